//! The broker-side timers of classic groups: member sessions, member ids waiting for their
//! second JoinGroup, and the rebalance (join and sync) deadlines.
//!
//! Each timer is one tokio task holding only a weak reference to its group, so a deleted
//! group's timers find nothing and end. Tasks are bounded: one per member, one per pending
//! member id (both bounded by `--group-max-size`), one rebalance timer per group; their abort
//! handles are kept by the group and used when the member or rebalance goes away.

use std::time::Duration;

use tokio::task::AbortHandle;

use super::{lock_group, GroupContext};

/// Sleeps until the member's heartbeat deadline, again while it is being heard from, and
/// removes it when the deadline passes in silence.
pub fn spawn_member_timer(
    ctx: &GroupContext,
    member_id: &str,
    first_deadline: tokio::time::Instant,
) -> AbortHandle {
    let ctx = ctx.clone();
    let member_id = member_id.to_string();
    let task = tokio::spawn(async move {
        let mut deadline = first_deadline;
        loop {
            tokio::time::sleep_until(deadline).await;
            let Some(slot) = ctx.slot.upgrade() else {
                return;
            };
            let mut group = lock_group(&slot);
            match group.classic().on_member_timer(&ctx, &member_id) {
                Some(next) => deadline = next,
                None => return,
            }
        }
    });
    task.abort_handle()
}

pub fn spawn_pending_timer(ctx: &GroupContext, member_id: &str, after: Duration) -> AbortHandle {
    let ctx = ctx.clone();
    let member_id = member_id.to_string();
    let task = tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if let Some(slot) = ctx.slot.upgrade() {
            lock_group(&slot)
                .classic()
                .on_pending_timeout(&ctx, &member_id);
        }
    });
    task.abort_handle()
}

pub fn spawn_rebalance_timer(ctx: &GroupContext, sequence: u64, after: Duration) -> AbortHandle {
    let ctx = ctx.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if let Some(slot) = ctx.slot.upgrade() {
            lock_group(&slot)
                .classic()
                .on_rebalance_timer(&ctx, sequence);
        }
    });
    task.abort_handle()
}
