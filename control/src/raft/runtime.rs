//! The async runtime openraft runs on: tokio, with openraft's randomness (its election timeouts)
//! drawn from a generator that a test can seed per thread.
//!
//! In a running master nothing is seeded and the randomness is the operating system's, as with
//! openraft's own tokio runtime. The simulation (`tests/simulation.rs`) runs masters on one thread
//! with tokio's clock paused and seeds that thread, so a seed replays the same elections.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend, TokioRuntime};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

thread_local! {
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Makes openraft's randomness on this thread come from `seed` (until the thread ends).
pub fn seed_this_thread(seed: u64) {
    SEEDED.with(|seeded| *seeded.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

/// A handle on this thread's generator: the seeded one if there is one, else the OS-seeded one.
pub struct ThreadRandom;

impl RngCore for ThreadRandom {
    fn next_u32(&mut self) -> u32 {
        SEEDED.with(|seeded| seeded.borrow_mut().as_mut().map(RngCore::next_u32)).unwrap_or_else(|| rand::thread_rng().next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        SEEDED.with(|seeded| seeded.borrow_mut().as_mut().map(RngCore::next_u64)).unwrap_or_else(|| rand::thread_rng().next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let filled = SEEDED.with(|seeded| seeded.borrow_mut().as_mut().map(|rng| rng.fill_bytes(dest)).is_some());
        if !filled {
            rand::thread_rng().fill_bytes(dest);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Tokio for openraft, with [`ThreadRandom`] (see the module documentation).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeededTokio;

impl AsyncRuntime for SeededTokio {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = <TokioRuntime as AsyncRuntime>::Instant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = ThreadRandom;
    type OneshotSender<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <TokioRuntime as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> ThreadRandom {
        ThreadRandom
    }

    fn oneshot<T: OptionalSend>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>) {
        TokioRuntime::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn a_seeded_thread_draws_the_same_numbers_again() {
        let draw = |seed| {
            std::thread::spawn(move || {
                seed_this_thread(seed);
                (0..5).map(|_| SeededTokio::thread_rng().gen_range(150..300)).collect::<Vec<u64>>()
            })
            .join()
            .unwrap()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        // Unseeded threads still draw.
        let _: u64 = SeededTokio::thread_rng().gen_range(0..10);
    }
}
