//! Rule 4: which task a message is about. `reply_to` wins; else a task the message names by its
//! topic; else the active task; else the only visible task.

use super::context::{Context, TaskRef};
use super::topic::{NAMES, Topic};

/// How the target was found; later ways are weaker evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    Reply,
    Topic,
    Active,
    Only,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub id: &'a str,
    /// `None` when the id is not among the visible tasks.
    pub task: Option<&'a TaskRef>,
    pub via: Via,
}

impl Target<'_> {
    pub fn is_running(&self) -> bool {
        self.task.is_some_and(|t| t.status.is_active())
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Resolved<'a> {
    Found(Target<'a>),
    /// Two tasks fit equally well.
    Ambiguous,
    None,
}

impl<'a> Resolved<'a> {
    pub fn found(self) -> Option<Target<'a>> {
        match self {
            Self::Found(t) => Some(t),
            _ => None,
        }
    }
}

/// Overlap of `topic` with every visible task title, in `ctx.tasks` order.
pub(crate) fn scores(topic: &Topic, titles: &[Topic]) -> Vec<f32> {
    titles.iter().map(|t| topic.overlap(t)).collect()
}

/// The task `scores` name, if one stands out. A task counts as named when its overlap reaches
/// [`NAMES`] and no other task comes close; the active task keeps the message when it fits too.
pub(crate) fn named<'a>(ctx: &'a Context, scores: &[f32]) -> Resolved<'a> {
    let mut order: Vec<usize> = (0..scores.len()).filter(|&i| scores[i] >= NAMES).collect();
    if order.is_empty() {
        return Resolved::None;
    }
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let best = order[0];
    let active = ctx.active_task.as_deref().and_then(|a| ctx.task_index(a));
    if let Some(a) = active
        && scores[a] >= scores[best] - 0.25
    {
        return Resolved::Found(found(ctx, a, Via::Topic));
    }
    if order.len() > 1 && scores[order[1]] >= scores[best] - 0.25 {
        return Resolved::Ambiguous;
    }
    Resolved::Found(found(ctx, best, Via::Topic))
}

/// Rule 4 over the whole message.
pub(crate) fn resolve<'a>(ctx: &'a Context, scores: &[f32]) -> Resolved<'a> {
    if let Some(r) = ctx.reply_to.as_deref() {
        return Resolved::Found(Target { id: r, task: ctx.task(r), via: Via::Reply });
    }
    match named(ctx, scores) {
        Resolved::None => {}
        other => return other,
    }
    if let Some(a) = ctx.active_task.as_deref() {
        return Resolved::Found(Target { id: a, task: ctx.task(a), via: Via::Active });
    }
    if ctx.tasks.len() == 1 {
        return Resolved::Found(found(ctx, 0, Via::Only));
    }
    if ctx.tasks.is_empty() { Resolved::None } else { Resolved::Ambiguous }
}

fn found(ctx: &Context, i: usize, via: Via) -> Target<'_> {
    let t = &ctx.tasks[i];
    Target { id: &t.id, task: Some(t), via }
}
