//! The test binary's harness (`tests/tests/it`, on libtest-mimic): plain test functions become
//! trials, each on its own thread and, for async tests, its own tokio runtime; trials that need
//! something from outside (PostgreSQL, a real agent CLI, Chromium) are reported *ignored*
//! without it and *failed* under `CI=true`; and [`eventually`], the one bounded wait the tests
//! poll with.

use std::future::Future;
use std::time::Duration;

pub use libtest_mimic::{Failed, Trial};

/// How long any test waits for something to happen (and the fake agents' turn limit).
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `probe` every 50 ms until it yields a value, and panics (failing the test) with
/// "timed out waiting for {what}" once [`WAIT`] has passed without one.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The tokio runtime an async test runs on, as `#[tokio::test]` would build it.
#[derive(Debug, Clone, Copy)]
pub enum Flavor {
    /// `#[tokio::test]`.
    CurrentThread,
    /// `#[tokio::test(flavor = "multi_thread", worker_threads = N)]`.
    MultiThread(usize),
}

/// Runs `future` to completion on a new runtime of `flavor`, dropped afterwards (with whatever
/// the test left spawned on it).
pub fn block_on<F: Future>(flavor: Flavor, future: F) -> F::Output {
    log_when_asked();
    let runtime = match flavor {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        Flavor::MultiThread(workers) => {
            tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()
        }
    };
    runtime.expect("building the test's tokio runtime").block_on(future)
}

/// The gateway's log on the test's output when `TASKGATE_TEST_LOG` is set (an `EnvFilter`
/// directive such as `taskgate=debug`): what an engine did when a journey times out. Off by
/// default, so a green run stays quiet.
fn log_when_asked() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if let Ok(filter) = std::env::var("TASKGATE_TEST_LOG") {
        ONCE.call_once(|| {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        });
    }
}

/// `module::test` from `module_path!()` (`it::module`, or deeper) and a test function's name:
/// the crate's name is dropped.
pub fn name(module_path: &str, test: &str) -> String {
    let module = module_path.split_once("::").map_or(module_path, |(_, rest)| rest);
    format!("{module}::{test}")
}

/// A trial that runs `test` on a thread of its own named after the trial, so a panic names
/// the test it happened in. A panic (an `assert!`, an `expect`) or an `Err` fails the trial
/// with its message; neither stops the other trials.
pub fn trial(name: String, test: impl FnOnce() -> Result<(), Failed> + Send + 'static) -> Trial {
    let thread = name.clone();
    Trial::test(name, move || {
        let ran = std::thread::Builder::new()
            .name(thread)
            .spawn(test)
            .map_err(|e| format!("starting the test's thread: {e}"))?
            .join();
        ran.unwrap_or_else(|panic| Err(panicked(panic.as_ref()).into()))
    })
}

/// The message of a caught panic, as the test's failure.
fn panicked(payload: &(dyn std::any::Any + Send)) -> String {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(a panic without a message)");
    format!("panicked: {message}")
}

/// Is this a CI run (`CI=true`)? There a test that cannot run fails instead of being ignored.
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// A trial that needs something from outside the build: `found` is it, or why it is missing.
/// Missing, the trial is reported *ignored* (and fails if forced with `--include-ignored`:
/// never a silent pass); under `CI=true` it fails.
pub fn requires<T: Send + 'static>(
    name: String,
    found: Result<T, String>,
    test: impl FnOnce(T) -> Result<(), Failed> + Send + 'static,
) -> Trial {
    match found {
        Ok(what) => trial(name, move || test(what)),
        Err(missing) if ci() => Trial::test(name, move || Err(format!("CI=true but {missing}").into())),
        Err(missing) => Trial::test(name, move || Err(missing.into())).with_ignored_flag(true),
    }
}

/// The trials of a test module, from plain test functions grouped by how they run:
///
/// ```text
/// pub fn trials() -> Vec<Trial> {
///     taskgate_tests::trials! {
///         current_thread: [an_async_test],      // #[tokio::test]
///         multi_thread(2): [a_threaded_test],   // #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
///         blocking: [a_plain_test],             // #[test]
///     }
/// }
/// ```
///
/// Each is named `module::function`. A test function left out of the list is dead code, a
/// warning that clippy's `-D warnings` turns into an error: a test cannot be forgotten quietly.
#[macro_export]
macro_rules! trials {
    (@push $trials:ident;) => {};
    (@push $trials:ident; current_thread: [$($test:ident),* $(,)?] $(, $($rest:tt)*)?) => {
        $($trials.push($crate::harness::trial($crate::harness::name(module_path!(), stringify!($test)), || {
            $crate::harness::block_on($crate::harness::Flavor::CurrentThread, $test());
            Ok(())
        }));)*
        $crate::trials!(@push $trials; $($($rest)*)?);
    };
    (@push $trials:ident; multi_thread($workers:literal): [$($test:ident),* $(,)?] $(, $($rest:tt)*)?) => {
        $($trials.push($crate::harness::trial($crate::harness::name(module_path!(), stringify!($test)), || {
            $crate::harness::block_on($crate::harness::Flavor::MultiThread($workers), $test());
            Ok(())
        }));)*
        $crate::trials!(@push $trials; $($($rest)*)?);
    };
    (@push $trials:ident; blocking: [$($test:ident),* $(,)?] $(, $($rest:tt)*)?) => {
        $($trials.push($crate::harness::trial($crate::harness::name(module_path!(), stringify!($test)), || {
            $test();
            Ok(())
        }));)*
        $crate::trials!(@push $trials; $($($rest)*)?);
    };
    ($($groups:tt)*) => {{
        let mut trials: ::std::vec::Vec<$crate::harness::Trial> = ::std::vec::Vec::new();
        $crate::trials!(@push trials; $($groups)*);
        trials
    }};
}

/// Waits until every channel reporting to `links` has connected to its (fake) platform.
pub async fn connected(links: &taskgate::channel::Links) {
    use taskgate::channel::Link;
    eventually("the channel connects", || async {
        let all = links.snapshot();
        (!all.is_empty() && all.iter().all(|(_, link)| *link == Link::Connected)).then_some(())
    })
    .await;
}
