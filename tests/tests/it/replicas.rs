//! Several replicas on one database: leader election for the channel singletons (the store's
//! `Singleton`/`Lease`) and, end to end, two Telegram channels on one PostgreSQL database
//! against the fake Bot API. The PostgreSQL cases are reported as ignored (never as passed)
//! without `TASKGATE_TEST_DATABASE_URL`, and under `CI=true` they fail.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;
use taskgate::config::TelegramConfig;
use taskgate::telegram::{self, Telegram};
use taskgate_adapters::store::{LeaseOptions, SeaStore, Singleton, lock_key};
use taskgate_core::model::Channel;
use taskgate_tests::db::{self, Backend, TestDb};
use taskgate_tests::fake_telegram::{FakeTelegram, channel_options};
use taskgate_tests::harness::{Flavor, Trial, eventually};
use taskgate_tests::world::World;

const SQLITE_CASES: &[(&str, db::Case)] = taskgate_tests::db_cases![sqlite_always_leads];
const POSTGRES_CASES: &[(&str, db::Case)] = taskgate_tests::db_cases![
    two_stores_one_leader,
    follower_takes_over_when_the_leader_stops,
    leadership_is_lost_with_its_connection,
    guarded_work_runs_on_one_replica_and_fails_over,
    two_telegram_replicas_poll_and_answer_once,
];

/// `replicas::sqlite::…` and `replicas::postgres::…`, each case on two worker threads and
/// bounded by 90 s.
pub fn trials() -> Vec<Trial> {
    let run = |backend, cases| db::trials(module_path!(), backend, cases, Flavor::MultiThread(2), Some(LIMIT));
    let mut trials = run(Backend::Sqlite, SQLITE_CASES);
    trials.extend(run(Backend::Postgres, POSTGRES_CASES));
    trials
}

const LIMIT: Duration = Duration::from_secs(90);
const TOKEN: &str = "123456:TEST-token";
const ADA: u64 = 111;

fn fast() -> LeaseOptions {
    LeaseOptions {
        retry: Duration::from_millis(200),
        heartbeat: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
    }
}

async fn sqlite_always_leads(db: &TestDb) -> anyhow::Result<()> {
    let (a, b) = (db.store().await?, db.store().await?);
    let first = a.singleton("test:sqlite", fast()).try_acquire().await?;
    let second = b.singleton("test:sqlite", fast()).try_acquire().await?;
    anyhow::ensure!(first.is_some() && second.is_some(), "SQLite grants every lease (one process per data dir)");
    let mut lease = first.expect("checked");
    anyhow::ensure!(lease.alive().await);
    // Never lost: `lost` stays pending.
    anyhow::ensure!(tokio::time::timeout(Duration::from_millis(500), lease.lost()).await.is_err());
    Ok(())
}

async fn two_stores_one_leader(db: &TestDb) -> anyhow::Result<()> {
    let (a, b) = (db.store().await?, db.store().await?);
    let (sa, sb) = (a.singleton("test:one", fast()), b.singleton("test:one", fast()));
    let (la, lb) = tokio::join!(sa.try_acquire(), sb.try_acquire());
    let (la, lb) = (la?, lb?);
    anyhow::ensure!(la.is_some() != lb.is_some(), "exactly one leader (a: {}, b: {})", la.is_some(), lb.is_some());
    // Held: neither store gets it again while the leader lives; another key is independent.
    anyhow::ensure!(sa.try_acquire().await?.is_none() && sb.try_acquire().await?.is_none());
    anyhow::ensure!(b.singleton("test:other", fast()).try_acquire().await?.is_some());
    Ok(())
}

async fn follower_takes_over_when_the_leader_stops(db: &TestDb) -> anyhow::Result<()> {
    let (a, b) = (db.store().await?, db.store().await?);
    let lease = a.singleton("test:move", fast()).try_acquire().await?.ok_or_else(|| anyhow::anyhow!("a leads"))?;
    let follower = b.singleton("test:move", fast());
    anyhow::ensure!(follower.try_acquire().await?.is_none());
    let waiting = tokio::spawn(async move { follower.acquire().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    anyhow::ensure!(!waiting.is_finished(), "the follower waits while the leader lives");
    // Replica a stops: its lease and its store go.
    drop(lease);
    a.close().await?;
    let started = tokio::time::Instant::now();
    let taken = tokio::time::timeout(Duration::from_secs(5), waiting).await;
    anyhow::ensure!(matches!(taken, Ok(Ok(_))), "the follower leads within 5 s");
    anyhow::ensure!(started.elapsed() < Duration::from_secs(5));
    Ok(())
}

/// The leader's session killed on the server (a dropped connection): the leader notices within
/// heartbeat + timeout, and the follower leads.
async fn leadership_is_lost_with_its_connection(db: &TestDb) -> anyhow::Result<()> {
    let (a, b) = (db.store().await?, db.store().await?);
    let mut lease = a.singleton("test:cut", fast()).try_acquire().await?.ok_or_else(|| anyhow::anyhow!("a leads"))?;
    anyhow::ensure!(lease.alive().await);
    let killed = terminate_holder(&b, "test:cut").await?;
    anyhow::ensure!(killed == 1, "one session held the lock, {killed} terminated");
    tokio::time::timeout(Duration::from_secs(5), lease.lost()).await.map_err(|_| anyhow::anyhow!("loss unnoticed"))?;
    let follower = b.singleton("test:cut", fast());
    tokio::time::timeout(Duration::from_secs(5), follower.acquire())
        .await
        .map_err(|_| anyhow::anyhow!("the follower did not take over"))?;
    Ok(())
}

/// Ends the session holding the advisory lock of singleton `name` (bigint keys are stored as
/// classid = high 32 bits, objid = low 32 bits, objsubid = 1).
async fn terminate_holder(store: &SeaStore, name: &str) -> anyhow::Result<i64> {
    let key = lock_key(name) as u64;
    let (high, low) = ((key >> 32) as i64, (key & 0xffff_ffff) as i64);
    let row = store
        .connection()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(pg_terminate_backend(pid))::bigint AS n FROM pg_locks \
             WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
             AND classid = $1::bigint::oid AND objid = $2::bigint::oid \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [high.into(), low.into()],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    Ok(row.try_get::<i64>("", "n")?)
}

/// Who runs the guarded work right now, and the most that ever ran at once.
#[derive(Default)]
struct Running {
    now: Mutex<Vec<&'static str>>,
    most: AtomicUsize,
}

struct Mark(Arc<Running>, &'static str);

impl Drop for Mark {
    fn drop(&mut self) {
        if let Ok(mut now) = self.0.now.lock() {
            now.retain(|w| *w != self.1);
        }
    }
}

fn guarded(singleton: Singleton, running: Arc<Running>, who: &'static str) -> tokio::task::JoinHandle<()> {
    tokio::spawn(singleton.run(move || {
        let running = running.clone();
        async move {
            let n = {
                let mut now = running.now.lock().expect("poisoned");
                now.push(who);
                now.len()
            };
            running.most.fetch_max(n, Ordering::SeqCst);
            let _mark = Mark(running, who);
            std::future::pending::<()>().await;
        }
    }))
}

async fn guarded_work_runs_on_one_replica_and_fails_over(db: &TestDb) -> anyhow::Result<()> {
    let (a, b) = (db.store().await?, db.store().await?);
    let running = Arc::new(Running::default());
    let ta = guarded(a.singleton("test:work", fast()), running.clone(), "a");
    let tb = guarded(b.singleton("test:work", fast()), running.clone(), "b");
    let who = || running.now.lock().map(|n| n.clone()).unwrap_or_default();
    eventually("one replica running the work", || async { (who().len() == 1).then_some(()) }).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leader = who();
    anyhow::ensure!(leader.len() == 1, "still exactly one: {leader:?}");
    let (gone, other) = if leader[0] == "a" { (ta, tb) } else { (tb, ta) };
    gone.abort();
    let _ = gone.await;
    eventually("the other replica taking over", || async { (who().len() == 1 && who()[0] != leader[0]).then_some(()) })
        .await;
    other.abort();
    anyhow::ensure!(running.most.load(Ordering::SeqCst) == 1, "never two at once");
    Ok(())
}

/// One replica: its own store on the shared database, its engine and Telegram channel, talking
/// to the fake under the path prefix `via`.
async fn replica(db: &TestDb, fake: &FakeTelegram, world: &World, via: &str) -> anyhow::Result<Telegram> {
    let text = format!(
        "token = \"{TOKEN}\"\napi_url = \"{}{via}\"\nmode = \"polling\"\nallowed_users = [{ADA}]\n",
        fake.url()
    );
    let tg: TelegramConfig = toml::from_str(&text)?;
    let engine = world.engine_with_store(db.store().await?);
    engine.set_admission(Channel::Telegram, telegram::admission(&tg));
    Telegram::start(Arc::new(engine), &tg, None, channel_options()).await
}

fn help(update_id: i64) -> serde_json::Value {
    json!({"update_id": update_id, "message": {
        "message_id": update_id * 10, "date": 1_700_000_000, "text": "/help",
        "chat": {"id": ADA, "type": "private", "first_name": "Ada"},
        "from": {"id": ADA, "is_bot": false, "first_name": "Ada", "username": "ada"}
    }})
}

/// Two replicas on one database: only one calls getUpdates, a message is answered once; when
/// that replica stops, the other polls and answers the next one (once).
async fn two_telegram_replicas_poll_and_answer_once(db: &TestDb) -> anyhow::Result<()> {
    let (world_a, world_b) = (World::new(), World::new());
    let fake = FakeTelegram::start(TOKEN).await?;
    let a = replica(db, &fake, &world_a, "a").await?;
    let b = replica(db, &fake, &world_b, "b").await?;
    let pollers = || {
        let mut via: Vec<String> = fake.calls_to("getUpdates").into_iter().map(|c| c.via).collect();
        via.dedup();
        via
    };
    eventually("a replica polling", || async { (!pollers().is_empty()).then_some(()) }).await;
    fake.push_update(help(1));
    let answers = || fake.calls_to("sendMessage").into_iter().filter(|c| c.status == 200).count();
    eventually("the /help answered", || async { (answers() >= 1).then_some(()) }).await;
    // Long enough for a second poller's long poll and a second sender's pass to show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let polled = pollers();
    anyhow::ensure!(polled.len() == 1, "one replica polls, not {polled:?}: {}", fake.summary());
    anyhow::ensure!(answers() == 1, "answered once: {}", fake.summary());

    // The polling replica stops; the other takes over within the lease's retry.
    let leader = polled[0].clone();
    let survivor = if leader == "a" { "b" } else { "a" };
    if leader == "a" {
        drop(a)
    } else {
        drop(b)
    }
    eventually("the other replica polling", || async {
        (pollers().last().map(String::as_str) == Some(survivor)).then_some(())
    })
    .await;
    fake.push_update(help(2));
    eventually("the second /help answered", || async { (answers() >= 2).then_some(()) }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    anyhow::ensure!(answers() == 2, "each message answered once: {}", fake.summary());
    Ok(())
}
