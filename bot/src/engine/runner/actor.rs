//! One execution, run by the replica that owns it: its sticky agent session, its turns in
//! order, the orders left for it (interrupt, answer, decide, close), and every runtime event
//! turned into a plan (`taskgate_core::react`) and committed under the lease.
//!
//! Everything the actor keeps in memory can be rebuilt from the store: a new owner (after a
//! crash, a stop, or an idle actor dropped) loads the execution and continues. A turn it finds
//! in flight belonged to a runner that went away: it is handed over (ended as interrupted and
//! queued again, with one line to the chat), so nothing accepted is lost and nothing runs twice
//! at once.

use std::sync::Arc;
use std::time::Duration;

use taskgate_adapters::runtime::SupervisedSession;
use taskgate_core::model::{
    ApprovalStatus, Body, Execution, Id, Lease, Order, PendingOrder, Role, Scope, SessionStatus, Turn, TurnStatus,
};
use taskgate_core::plan::{Effect, Plan, TaskRef};
use taskgate_core::react::{self, ExecView, TurnProgress};
use taskgate_core::reply::Reply;
use taskgate_core::runtime::{AgentSession, ApprovalDecision, RuntimeError, RuntimeEvent, TurnOutcome};
use taskgate_core::store::{Store, StoreError, StoreResult};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{Msg, Shared};
use crate::engine::apply::{self, Applied, Origin};
use crate::engine::display_agent;

/// After the grace, how long a handover may take: the interrupt, the agent's answer to it,
/// the plan committed, the lease released.
pub(super) const HANDOVER: Duration = Duration::from_secs(3);
/// How long an interrupted turn may take to report its end during a handover.
const INTERRUPT_WAIT: Duration = Duration::from_secs(2);

pub(super) struct Live {
    pub session: SupervisedSession,
    /// The session's row.
    pub row: Id,
}

/// The turn in flight.
struct Current {
    turn: Turn,
    progress: TurnProgress,
    /// Request id of the question the agent asked and still waits on.
    question: Option<String>,
}

pub(super) struct Actor {
    pub(super) shared: Arc<Shared>,
    pub(super) lease: Lease,
    pub(super) exec: Execution,
    pub(super) display: String,
    pub(super) title: String,
    /// Where the agent works: the project directory, a worktree of its own, or (a reviewer)
    /// where the work it reviews lives. Set with each new session (`ensure_session`).
    pub(super) cwd: String,
    /// The project's own checkout.
    pub(super) project_dir: String,
    /// A reviewer: its session may not write (codex `read-only`, claude plan mode).
    pub(super) read_only: bool,
    /// The execution's own worktree, when it works in one.
    pub(super) worktree: Option<taskgate_core::worktree::Worktree>,
    pub(super) model: Option<String>,
    pub(super) project: Option<Id>,
    pub(super) live: Option<Live>,
    current: Option<Current>,
    /// Changes when a new session waits for a process slot (see `release_if_wanted`).
    pub(super) slot_wanted: Option<watch::Receiver<u64>>,
    /// This actor gave its idle process back: resuming it is routine, not news for the chat.
    pub(super) quiet_resume: bool,
    /// The lease is gone (another replica took the execution): stop at once, write nothing.
    fenced: bool,
    /// When the `/new` handoff turn in flight is stopped (`notes.handoff_secs`).
    handoff_deadline: Option<Instant>,
}

impl Actor {
    pub(super) fn new(shared: Arc<Shared>, lease: Lease) -> Self {
        let exec_id = lease.execution;
        Actor {
            slot_wanted: Some(shared.supervisor.slot_wanted()),
            shared,
            lease,
            exec: Execution {
                id: exec_id,
                task_id: 0,
                agent: String::new(),
                role: Role::Editor,
                status: taskgate_core::model::ExecutionStatus::Pending,
                version: 0,
                created_at: chrono::Utc::now(),
                updated_at: chrono::Utc::now(),
            },
            display: String::new(),
            title: String::new(),
            cwd: String::new(),
            project_dir: String::new(),
            read_only: false,
            worktree: None,
            model: None,
            project: None,
            live: None,
            current: None,
            quiet_resume: false,
            fenced: false,
            handoff_deadline: None,
        }
    }

    fn store(&self) -> &taskgate_adapters::store::SeaStore {
        &self.shared.store
    }

    /// A turn is in flight.
    pub(super) fn is_busy(&self) -> bool {
        self.current.is_some()
    }

    async fn load(&mut self) -> StoreResult<()> {
        let exec = self.store().execution(self.lease.execution).await?;
        let task = self.store().task(exec.task_id).await?;
        self.display = display_agent(&exec.agent);
        self.model = self.shared.config.agents.get(&exec.agent).and_then(|a| a.model.clone());
        self.title = task.title.clone();
        self.project = task.project_id;
        let projects = self.store().projects().await?;
        let from_store = task.project_id.and_then(|id| projects.into_iter().find(|p| p.id == id)).map(|p| p.path);
        let from_config = self.shared.config.projects.first().map(|p| p.path.to_string_lossy().into_owned());
        self.cwd = from_store
            .or(from_config)
            .unwrap_or_else(|| self.shared.config.server.data_dir.to_string_lossy().into_owned());
        self.project_dir = self.cwd.clone();
        self.exec = exec;
        Ok(())
    }

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        if let Err(e) = self.load().await {
            tracing::error!(execution = self.lease.execution, error = %e, "cannot load the execution; giving it up");
            let _ = self.store().release(&self.lease).await;
            return;
        }
        self.expire_orphans().await;
        self.sync().await;
        let mut idle_since = Instant::now();
        loop {
            if self.fenced {
                break;
            }
            let idle = self.current.is_none();
            if !idle {
                idle_since = Instant::now();
            }
            // Without a process an idle actor holds nothing worth keeping; with one, the
            // process stays for a while for the next message.
            let keep = if self.live.is_some() { self.shared.config.runtime.idle() } else { Duration::ZERO };
            let dropped = self.shared.dropped.clone();
            let handoff_deadline = self.handoff_deadline.filter(|_| self.current.is_some());
            tokio::select! {
                () = sleep_until_some(handoff_deadline) => {
                    // The handoff had its time: the fresh session must not wait for it.
                    tracing::info!(execution = self.exec.id, "the handoff turn hit its time limit; interrupting");
                    self.handoff_deadline = None;
                    self.interrupt().await;
                }
                () = dropped.cancelled() => {
                    // The engine is gone without a shutdown: end the agent, leave the rows as
                    // they are (the next owner takes over, as after a crash).
                    if let Some(mut live) = self.live.take() {
                        live.session.shutdown().await;
                    }
                    return;
                }
                msg = rx.recv() => match msg {
                    Some(Msg::Wake) => self.sync().await,
                    Some(Msg::Stop { deadline }) => {
                        self.stop(deadline).await;
                        return;
                    }
                    None => break,
                },
                event = next_event(&mut self.live) => self.on_event(event).await,
                changed = slot_wanted(&mut self.slot_wanted) => match changed {
                    Ok(()) => self.release_if_wanted().await,
                    // The supervisor is gone; nobody will want a slot again.
                    Err(_) => self.slot_wanted = None,
                },
                () = tokio::time::sleep_until(idle_since + keep), if idle => {
                    if self.idle_done().await {
                        break;
                    }
                    idle_since = Instant::now();
                }
            }
        }
        self.leave().await;
    }

    /// Approvals of this execution still pending for a turn that is no longer open wait for
    /// an answer nothing can deliver: a new owner expires them, so their buttons stop working.
    async fn expire_orphans(&mut self) {
        let (Ok(pending), Ok(open)) = (
            self.store().pending_approvals(Some(self.exec.task_id)).await,
            self.store().execution_turns(self.exec.id).await,
        ) else {
            return;
        };
        let mut plan = Plan::default();
        for approval in pending.iter().filter(|a| a.execution_id == Some(self.exec.id)) {
            if let Some(turn) = approval.turn_id.filter(|t| !open.iter().any(|o| o.id == *t)) {
                plan.push(Effect::ExpireApprovals {
                    turn,
                    reason: "its turn ended before the gateway restarted".into(),
                });
            }
        }
        if !plan.effects.is_empty() {
            self.commit(&plan).await;
        }
    }

    /// Idle and nothing new: the actor goes (its process shut down, its lease released), and
    /// the store rebuilds it on the next work. `false` when work arrived meanwhile.
    async fn idle_done(&mut self) -> bool {
        let Ok(seq) = self.store().work_seq(self.exec.id).await else { return false };
        let quiet = match self.store().orders(self.exec.id).await {
            Ok(orders) => orders.is_empty(),
            Err(_) => false,
        } && self.store().execution_turns(self.exec.id).await.is_ok_and(|t| t.is_empty());
        quiet && self.store().work_done(&self.lease, seq).await.unwrap_or(false)
    }

    /// Gives the execution up: the process ends, the lease is released (unless it is already
    /// someone else's).
    async fn leave(&mut self) {
        if let Some(mut live) = self.live.take() {
            live.session.shutdown().await;
        }
        if !self.fenced {
            crate::engine::worktree::close_if_finished(&self.shared, self.exec.id).await;
        }
        if !self.fenced
            && let Err(e) = self.store().release(&self.lease).await
        {
            tracing::warn!(execution = self.exec.id, error = %e, "releasing an execution failed; it expires instead");
        }
    }

    /// Reads what there is to do: orders first (a stop must not wait behind a turn), then the
    /// next turn when none runs. When everything is done, the execution's work flag is cleared
    /// (unless more arrived meanwhile, which is then read too).
    async fn sync(&mut self) {
        for _ in 0..8 {
            if self.fenced {
                return;
            }
            let seq = match self.store().work_seq(self.exec.id).await {
                Ok(seq) => seq,
                Err(e) => return self.log_err("reading the work", e),
            };
            match self.store().orders(self.exec.id).await {
                Ok(orders) => {
                    for order in orders {
                        self.carry_out(order).await;
                    }
                }
                Err(e) => return self.log_err("reading the orders", e),
            }
            self.start_next().await;
            if self.current.is_some() {
                return;
            }
            match self.store().work_done(&self.lease, seq).await {
                Ok(true) => return,
                // More work arrived while this pass ran: read again.
                Ok(false) => continue,
                Err(e) => return self.log_err("marking the work done", e),
            }
        }
    }

    async fn carry_out(&mut self, order: PendingOrder) {
        match order.order {
            Order::Interrupt => self.interrupt().await,
            Order::Answer { text } => self.answer(&text).await,
            Order::Decide { approval } => self.decide(approval).await,
            Order::Close => {
                if let Some(mut live) = self.live.take() {
                    live.session.shutdown().await;
                }
            }
        }
        if let Err(e) = self.store().order_done(order.id).await {
            self.log_err("marking an order done", e);
        }
    }

    /// Starts queued turns until one runs (or none is left). A turn found in flight was left by
    /// a runner that went away: it is handed over first.
    async fn start_next(&mut self) {
        while self.current.is_none() && !self.fenced {
            let turns = match self.store().execution_turns(self.exec.id).await {
                Ok(turns) => turns,
                Err(e) => return self.log_err("reading the turns", e),
            };
            let Some(turn) = turns.into_iter().next() else { return };
            if turn.status != TurnStatus::Queued {
                let notice = Some(react::restart_notice(&self.display));
                let plan = react::handed_over(
                    &self.view(None),
                    turn.id,
                    &turn.input,
                    "interrupted by a gateway restart",
                    notice,
                );
                tracing::info!(
                    execution = self.exec.id,
                    turn = turn.id,
                    "took over a turn in flight; running it again"
                );
                if self.commit(&plan).await.is_none() {
                    return;
                }
                continue;
            }
            self.start(turn).await;
        }
    }

    async fn start(&mut self, turn: Turn) {
        let row = match self.store().session(turn.session_id).await {
            Ok(row) => row,
            Err(e) => return self.log_err("reading the session", e),
        };
        let handoff = turn.input == taskgate_core::route::prompt::HANDOFF;
        self.handoff_deadline =
            handoff.then(|| Instant::now() + Duration::from_secs(self.shared.config.notes.handoff_secs.max(1)));
        let seeded = match self.ensure_session(row, handoff).await {
            Ok(seeded) => seeded,
            Err(message) => {
                let message = format!("{} could not start: {message}", self.display);
                let plan = react::unstarted(&self.view(None), turn.id, &message);
                self.commit(&plan).await;
                return;
            }
        };
        let input = match seeded {
            Some(note) => format!("{note}\n\n{}", turn.input),
            None => turn.input.clone(),
        };
        // Files the person sent with the message: images as image input, other files copied
        // into the project and named in the text.
        let files = match self.store().turn_attachments(turn.id).await {
            Ok(files) => files,
            Err(e) => return self.log_err("reading the turn's files", e),
        };
        let input =
            crate::attachments::turn_input(input, &files, std::path::Path::new(&self.cwd), self.exec.task_id).await;
        let sent = match &self.live {
            Some(live) => live.session.send_input(&input).await.map_err(|e| e.to_string()),
            None => Err("no session".into()),
        };
        if let Err(message) = sent {
            let message = format!("{} could not take the turn: {message}", self.display);
            let plan = react::unstarted(&self.view(None), turn.id, &message);
            self.commit(&plan).await;
            return;
        }
        let id = turn.id;
        self.current = Some(Current { turn, progress: TurnProgress::new(id), question: None });
        let plan = react::turn_started(&self.view(None), id);
        self.commit(&plan).await;
    }

    async fn on_event(&mut self, event: Option<RuntimeEvent>) {
        let Some(event) = event else {
            // The supervisor gave up and closed the stream.
            let mut plan = Plan::default();
            if let Some(live) = self.live.take() {
                plan.push(Effect::SetSession { session: live.row, to: SessionStatus::Dead, provider_session_id: None });
            }
            if self.current.is_some() {
                let outcome = TurnOutcome::Failed { message: "the agent process is gone".into() };
                plan.effects.extend(react::finished(&self.view(None), &outcome, None).effects);
            }
            self.commit(&plan).await;
            self.turn_ended().await;
            return;
        };
        if let Some(current) = &mut self.current {
            current.progress.observe(&event);
            if let RuntimeEvent::Question { request_id, .. } = &event {
                // Before the task shows waiting_input: an answer routed then must find it.
                current.question = Some(request_id.clone());
            }
        }
        if let RuntimeEvent::SessionReady { .. } = &event
            && std::mem::take(&mut self.quiet_resume)
        {
            tracing::debug!(execution = self.exec.id, "resumed a released session");
        }
        let ends = match &event {
            RuntimeEvent::TurnFinished { .. } => self.current.is_some(),
            RuntimeEvent::Died { restarting: false, .. } => true,
            RuntimeEvent::Died { restarting: true, .. } => {
                // One line per crash: "restarting it" already says what comes next.
                self.quiet_resume = true;
                false
            }
            _ => false,
        };
        let others_busy = if ends { self.others_busy().await } else { false };
        let rule = match &event {
            RuntimeEvent::ApprovalRequested(request) => self.standing_rule(&request.action).await,
            _ => None,
        };
        // A turn ending on a branch of its own: its work is committed there, and the final
        // message says so (with Merge and Discard).
        let handed_back = match &self.worktree {
            Some(w) if ends => {
                let files =
                    crate::engine::worktree::settle(w, &self.display, self.current.as_ref().map(|c| c.turn.id)).await;
                Some((files, w.branch.clone()))
            }
            _ => None,
        };
        let view = ExecView { others_busy, rule, ..self.view(None) };
        let mut plan = react::react(&event, &view);
        if let Some((files, branch)) = handed_back {
            taskgate_core::worktree::hand_back(&mut plan, self.exec.id, files, &branch);
        }
        if plan.effects.is_empty() {
            return;
        }
        let applied = self.commit(&plan).await;
        if applied.is_some()
            && let Some(current) = &mut self.current
        {
            current.progress.unsaved.clear();
        }
        for (request_id, approval) in applied.map(|a| a.auto_approved).unwrap_or_default() {
            let delivered = match &self.live {
                Some(live) => live.session.decide(&request_id, ApprovalDecision::AllowOnce).await,
                None => Err(RuntimeError::Dead),
            };
            if let Err(e) = delivered {
                tracing::warn!(execution = self.exec.id, approval, error = %e, "delivering a rule's approval failed");
            }
        }
        if let RuntimeEvent::Died { restarting: false, .. } = &event {
            self.live = None;
        }
        if ends {
            self.turn_ended().await;
        }
    }

    /// The turn in flight ended: the next one starts, or the actor goes idle.
    async fn turn_ended(&mut self) {
        self.current = None;
        self.handoff_deadline = None;
        // The turn's commands, files and outcome are on the timeline: the export follows.
        self.shared.notes.keep_current(self.exec.task_id);
        self.sync().await;
        // Idle now: a session waiting for a slot may have missed our earlier look.
        self.release_if_wanted().await;
    }

    /// The standing rule that approves `action` of this agent in this project, if any.
    async fn standing_rule(&self, action: &str) -> Option<Id> {
        match self.store().matching_rule(self.project, &self.exec.agent, action).await {
            Ok(rule) => rule.map(|r| r.id),
            Err(e) => {
                // Without the rule, a person is asked: the safe way to fail.
                self.log_err("looking up approval rules", e);
                None
            }
        }
    }

    /// Whether another execution of this task still has open turns (the task stays running).
    async fn others_busy(&self) -> bool {
        let Ok(execs) = self.store().executions(self.exec.task_id).await else { return false };
        for e in execs.iter().filter(|e| e.id != self.exec.id) {
            if self.store().execution_turns(e.id).await.is_ok_and(|t| !t.is_empty()) {
                return true;
            }
        }
        false
    }

    async fn interrupt(&mut self) {
        if self.current.is_none() {
            return;
        }
        if let Some(live) = &self.live
            && let Err(e) = live.session.interrupt().await
        {
            tracing::warn!(execution = self.exec.id, error = %e, "interrupt failed");
        }
    }

    /// Delivers the person's answer to the question the turn waits on. Where nothing can take
    /// it (the protocol has no answers, or the question went with a restarted process) the text
    /// becomes the next turn instead, and the chat is told in one line.
    async fn answer(&mut self, text: &str) {
        let question = self.current.as_mut().and_then(|c| c.question.take());
        let delivered = match (&self.live, &question) {
            (Some(live), Some(id)) => live.session.answer(id, text).await,
            (None, _) => Err(RuntimeError::Dead),
            (_, None) => Err(RuntimeError::UnknownRequest("no question pending".into())),
        };
        let error = match delivered {
            Ok(()) => return,
            Err(e) => e,
        };
        tracing::info!(execution = self.exec.id, error = %error, "the answer could not be delivered; queueing it as the next turn");
        let task = TaskRef::Existing(self.exec.task_id);
        let mut plan = Plan::default();
        plan.push(Effect::Record { task, body: Body::AnswerQueued { error: error.to_string() } });
        plan.push(Effect::QueueTurn { execution: self.exec.id, input: text.to_owned() });
        plan.push(Effect::Reply(Reply::text(format!(
            "{} cannot take answers mid-turn; your reply runs as its next turn.",
            self.display
        ))));
        self.commit(&plan).await;
    }

    /// Delivers the decision recorded on `approval` to the agent that asked.
    async fn decide(&mut self, approval: Id) {
        let approval = match self.store().approval(approval).await {
            Ok(a) => a,
            Err(e) => return self.log_err("reading an approval", e),
        };
        let decision = match (approval.status, approval.scope) {
            (ApprovalStatus::Approved, Some(Scope::Always)) => ApprovalDecision::AllowForSession,
            (ApprovalStatus::Approved, _) => ApprovalDecision::AllowOnce,
            (ApprovalStatus::Denied, _) => ApprovalDecision::Deny,
            (ApprovalStatus::Cancelled, _) => ApprovalDecision::DenyAndStop,
            (ApprovalStatus::Pending | ApprovalStatus::Expired, _) => return,
        };
        let ours = self.current.as_ref().is_some_and(|c| approval.turn_id == Some(c.turn.id));
        let delivered = match (&self.live, ours) {
            (Some(live), true) => live.session.decide(&approval.request_id, decision).await,
            _ => Err(RuntimeError::UnknownRequest(approval.request_id.clone())),
        };
        match delivered {
            Ok(()) => {
                let turn = approval.turn_id;
                let still_waiting = match self.store().pending_approvals(Some(self.exec.task_id)).await {
                    Ok(pending) => pending.iter().any(|a| a.turn_id == turn),
                    Err(_) => false,
                };
                let plan = react::decided(&self.view(None), decision, still_waiting);
                self.commit(&plan).await;
            }
            Err(e) => {
                tracing::warn!(execution = self.exec.id, error = %e, "the approval's request is gone; nothing to answer");
                let mut plan = Plan::default();
                let task = TaskRef::Existing(self.exec.task_id);
                plan.push(Effect::Record {
                    task,
                    body: Body::DecisionUndelivered { approval: approval.id, error: e.to_string() },
                });
                plan.push(Effect::Reply(Reply::text(format!(
                    "{} is no longer waiting for: {}",
                    self.display, approval.action
                ))));
                self.commit(&plan).await;
            }
        }
    }

    /// The gateway stops: the running turn gets until `deadline` to finish; then it is
    /// interrupted through the protocol and handed over (queued again, one line to the chat).
    /// The process ends and the lease is released, so another replica continues at once.
    async fn stop(&mut self, deadline: Instant) {
        while self.current.is_some() && !self.fenced {
            tokio::select! {
                event = next_event(&mut self.live) => self.on_event_while_stopping(event).await,
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        if self.current.is_some() && !self.fenced {
            self.interrupt().await;
            let waited = Instant::now() + INTERRUPT_WAIT;
            // Whatever the agent still says is recorded; its end does not end the turn here.
            while let Ok(Some(event)) = tokio::time::timeout_at(waited, next_event_or_none(&mut self.live)).await {
                if matches!(event, RuntimeEvent::TurnFinished { .. }) {
                    break;
                }
                if let Some(current) = &mut self.current {
                    current.progress.observe(&event);
                }
                let plan = react::react(&event, &self.view(None));
                if !plan.effects.is_empty()
                    && self.commit(&plan).await.is_some()
                    && let Some(current) = &mut self.current
                {
                    current.progress.unsaved.clear();
                }
            }
            if let Some(current) = self.current.take() {
                let view = ExecView { turn: Some(&current.progress), ..self.view(None) };
                let notice = Some(react::restart_notice(&self.display));
                let plan = react::handed_over(
                    &view,
                    current.turn.id,
                    &current.turn.input,
                    "interrupted by a gateway stop",
                    notice,
                );
                self.commit(&plan).await;
                tracing::info!(execution = self.exec.id, turn = current.turn.id, "handed a running turn over");
            }
        }
        self.leave().await;
    }

    /// An event while the gateway waits for the turn to finish: handled as usual, except that
    /// the turn's end does not start the next one (that is for the next owner).
    async fn on_event_while_stopping(&mut self, event: Option<RuntimeEvent>) {
        let ends = matches!(event, Some(RuntimeEvent::TurnFinished { .. }) | None);
        if !ends {
            return self.on_event(event).await;
        }
        let Some(event) = event else {
            self.on_event(None).await;
            return;
        };
        if let Some(current) = &mut self.current {
            current.progress.observe(&event);
        }
        let others_busy = self.others_busy().await;
        let plan = react::react(&event, &ExecView { others_busy, ..self.view(None) });
        self.commit(&plan).await;
        self.current = None;
    }

    /// What react needs to know about this execution; `turn` overrides the turn in flight.
    fn view<'a>(&'a self, turn: Option<&'a TurnProgress>) -> ExecView<'a> {
        ExecView {
            execution: self.exec.id,
            task: self.exec.task_id,
            agent: &self.display,
            role: self.exec.role,
            title: &self.title,
            session: self.live.as_ref().map(|l| l.row),
            turn: turn.or(self.current.as_ref().map(|c| &c.progress)),
            others_busy: false,
            cwd: &self.cwd,
            rule: None,
        }
    }

    /// Applies `plan` under the lease. `None` when it could not be written; a lost lease stops
    /// the actor.
    async fn commit(&mut self, plan: &Plan) -> Option<Applied> {
        let origin = Origin::Agent {
            task: self.exec.task_id,
            execution: self.exec.id,
            turn: self.current.as_ref().map(|c| c.turn.id),
            agent: &self.display,
            model: self.model.as_deref(),
        };
        let length = self.shared.lease_length();
        match apply::commit(&self.shared.store, plan, &origin, Some((&self.lease, length))).await {
            Ok(applied) => {
                self.shared.outbox.after(plan);
                Some(applied)
            }
            Err(StoreError::Fenced(_)) => {
                tracing::warn!(execution = self.exec.id, "another replica owns this execution now; stopping here");
                self.fenced = true;
                None
            }
            Err(e) => {
                self.log_err("recording what the agent did", e);
                None
            }
        }
    }

    fn log_err(&self, what: &str, e: StoreError) {
        tracing::error!(execution = self.exec.id, error = %e, "{what}");
    }
}

async fn slot_wanted(wanted: &mut Option<watch::Receiver<u64>>) -> Result<(), watch::error::RecvError> {
    match wanted {
        Some(wanted) => wanted.changed().await,
        None => std::future::pending().await,
    }
}

/// The next event of the live session; pending forever without one.
async fn next_event(live: &mut Option<Live>) -> Option<RuntimeEvent> {
    match live {
        Some(live) => live.session.next_event().await,
        None => std::future::pending().await,
    }
}

/// The next event, or `None` at once without a session.
async fn next_event_or_none(live: &mut Option<Live>) -> Option<RuntimeEvent> {
    match live {
        Some(live) => live.session.next_event().await,
        None => None,
    }
}

/// Sleeps until `deadline`; never wakes without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
