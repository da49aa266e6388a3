//! Group commit: one thread owns the queue database's writes and commits whatever has queued
//! up since its last commit in one transaction, so a burst of sends costs one commit rather
//! than one each. A caller that needs durability (a send, a delete) awaits its batch's commit;
//! state changes a crash may lose without harm (a receive's new visibility) are sent without
//! waiting. Jobs are applied in the order they were queued.

use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;
use updraft_store::QueueDb;
use updraft_store::queues::QueueOp;

/// Most jobs one transaction takes, so one commit never grows without bound.
const MAX_JOBS_PER_COMMIT: usize = 512;

struct Job {
    ops: Vec<QueueOp>,
    done: Option<oneshot::Sender<Result<(), String>>>,
}

/// The handle to the writer thread; dropping every handle stops it.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(db: Arc<QueueDb>) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("queue-writer".into())
            .spawn(move || run(&db, &rx))
            .expect("spawn the queue writer thread");
        Self { tx }
    }

    /// Queues `ops` and returns a receiver that resolves once they are committed.
    pub fn submit(&self, ops: Vec<QueueOp>) -> oneshot::Receiver<Result<(), String>> {
        let (done, rx) = oneshot::channel();
        if let Err(mpsc::SendError(job)) = self.tx.send(Job {
            ops,
            done: Some(done),
        }) && let Some(done) = job.done
        {
            let _ = done.send(Err("the queue writer has stopped".into()));
        }
        rx
    }

    /// Queues `ops` without waiting for their commit.
    pub fn persist(&self, ops: Vec<QueueOp>) {
        if ops.is_empty() {
            return;
        }
        if self.tx.send(Job { ops, done: None }).is_err() {
            tracing::error!("queue writer stopped; a state change was not persisted");
        }
    }
}

fn run(db: &QueueDb, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_JOBS_PER_COMMIT {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let all: Vec<QueueOp> = jobs.iter().flat_map(|j| j.ops.iter().cloned()).collect();
        match db.apply(&all) {
            Ok(()) => {
                for j in jobs {
                    if let Some(d) = j.done {
                        let _ = d.send(Ok(()));
                    }
                }
            }
            Err(e) => {
                // One bad job must not fail its neighbours: retry each on its own.
                tracing::warn!(error = %e, jobs = jobs.len(), "queue group commit failed; committing jobs one by one");
                for j in jobs {
                    let r = db.apply(&j.ops).map_err(|e| e.to_string());
                    if let Err(e) = &r {
                        tracing::error!(error = %e, "queue write failed");
                    }
                    if let Some(d) = j.done {
                        let _ = d.send(r);
                    }
                }
            }
        }
    }
}
