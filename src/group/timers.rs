//! The broker-side timers of groups: classic member sessions, member ids waiting for their
//! second JoinGroup, the rebalance (join and sync) deadlines, and consumer (KIP-848) member
//! sessions and revocation deadlines.
//!
//! Each timer is one tokio task holding only a weak reference to its group, so a deleted
//! group's timers find nothing and end. Tasks are bounded: one per member, one per pending
//! member id (both bounded by `--group-max-size`), one rebalance timer per group; their abort
//! handles are kept by the group and used when the member or rebalance goes away. A group
//! that changed kind meanwhile (an empty classic group became a consumer group) has nothing
//! for an old timer to do, so it ends.

use std::time::Duration;

use tokio::task::AbortHandle;

use super::{lock_group, Group, GroupContext};

/// Sleeps until the member's heartbeat deadline, again while it is being heard from, and
/// removes it when the deadline passes in silence.
pub fn spawn_member_timer(
    ctx: &GroupContext,
    member_id: &str,
    first_deadline: tokio::time::Instant,
) -> AbortHandle {
    let member_id = member_id.to_string();
    spawn_deadline_loop(ctx, first_deadline, move |group, ctx| {
        group
            .classic()
            .and_then(|classic| classic.on_member_timer(ctx, &member_id))
    })
}

/// Runs `on_deadline` at each deadline it returns, until it returns `None` or the group is
/// gone. The group lock is taken only while `on_deadline` runs, never across the sleep.
fn spawn_deadline_loop(
    ctx: &GroupContext,
    first_deadline: tokio::time::Instant,
    mut on_deadline: impl FnMut(&mut Group, &GroupContext) -> Option<tokio::time::Instant>
        + Send
        + 'static,
) -> AbortHandle {
    let ctx = ctx.clone();
    let task = tokio::spawn(async move {
        let mut deadline = first_deadline;
        loop {
            tokio::time::sleep_until(deadline).await;
            let Some(slot) = ctx.slot.upgrade() else {
                return;
            };
            let next = on_deadline(&mut lock_group(&slot), &ctx);
            match next {
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
            if let Some(classic) = lock_group(&slot).classic() {
                classic.on_pending_timeout(&ctx, &member_id);
            }
        }
    });
    task.abort_handle()
}

pub fn spawn_rebalance_timer(ctx: &GroupContext, sequence: u64, after: Duration) -> AbortHandle {
    let ctx = ctx.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if let Some(slot) = ctx.slot.upgrade() {
            if let Some(classic) = lock_group(&slot).classic() {
                classic.on_rebalance_timer(&ctx, sequence);
            }
        }
    });
    task.abort_handle()
}

/// Sleeps until a consumer group member's session or revocation deadline, again while it
/// keeps heartbeating, and fences it when one passes.
pub fn spawn_consumer_member_timer(
    ctx: &GroupContext,
    member_id: &str,
    first_deadline: tokio::time::Instant,
) -> AbortHandle {
    let member_id = member_id.to_string();
    spawn_deadline_loop(ctx, first_deadline, move |group, ctx| {
        let group_id = group.id.clone();
        let consumer = group.consumer()?;
        let next = consumer.on_member_timer(&member_id);
        if next.is_none() {
            persist_fenced(ctx, &group_id, consumer);
        }
        next
    })
}

/// Writes a fenced member's tombstones (and the new group epoch) now, so a coordinator that
/// takes over does not bring the member back. Replication is not awaited: nobody waits for
/// an answer, and a lost write only means the member is restored and fenced again.
fn persist_fenced(ctx: &GroupContext, group_id: &str, consumer: &mut super::ConsumerGroup) {
    let Some(log) = &ctx.log else {
        return;
    };
    let written =
        super::write_consumer_changes(log.as_ref(), ctx.offsets_partition, group_id, consumer);
    if let Err(error) = written {
        tracing::warn!(
            ?error,
            group_id,
            "writing a fenced member failed; the next heartbeat retries"
        );
    }
}
