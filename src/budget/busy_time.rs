//! The time a request keeps a worker busy: the sum of its future's `poll`s. Waiting (a
//! long-polling Fetch, acks=all replication) is not counted, as Kafka's request-time quota
//! counts the request handler's thread time, not the time a request sits in purgatory.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Wraps a pinned future; resolves to its output and the time spent inside its polls.
pub struct BusyTime<F> {
    inner: F,
    busy: Duration,
}

impl<F: Future + Unpin> BusyTime<F> {
    pub fn new(inner: F) -> BusyTime<F> {
        BusyTime {
            inner,
            busy: Duration::ZERO,
        }
    }
}

impl<F: Future + Unpin> Future for BusyTime<F> {
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let started = Instant::now();
        let polled = Pin::new(&mut self.inner).poll(cx);
        self.busy += started.elapsed();
        polled.map(|output| (output, self.busy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_is_not_busy_time() {
        let work = std::pin::pin!(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            std::thread::sleep(Duration::from_millis(20));
            7
        });
        let (output, busy) = BusyTime::new(work).await;
        assert_eq!(output, 7);
        assert!(busy >= Duration::from_millis(20), "{busy:?}");
        assert!(busy < Duration::from_millis(150), "{busy:?}");
    }
}
