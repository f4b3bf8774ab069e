//! Rule 10's other half: when the classifier would rather ask, the likeliest readings of the
//! message, which the router offers as buttons. Pressing one acts on the original message.

use super::decision::{Decision, Intent, Scope};
use super::message::Msg;
use super::topic::Topic;
use super::vocab::Class;
use super::{Classifier, Context, target};

impl Classifier {
    /// Up to two readings that would both act, most likely first: answers to the pending
    /// approvals when the message is a yes or a no, else a follow-up of the tasks it fits best,
    /// else a new task.
    pub fn readings(&self, text: &str, ctx: &Context) -> Vec<Decision> {
        let msg = Msg::new(text, &self.lex);
        let yes = msg.has_live(Class::Yes);
        let no = msg.has_live(Class::No) || msg.has_live(Class::Stop);
        let mut out = Vec::new();
        if yes != no {
            let intent = if yes { Intent::Approve } else { Intent::Deny };
            for a in ctx.pending_approvals.iter().take(2) {
                let scope = yes.then_some(Scope::Once);
                out.push(
                    Decision::new(intent, 0.5, format!("{intent} {}", a.action))
                        .task(Some(&a.task))
                        .approval(&a.id, scope),
                );
            }
        }
        // Tasks by how well the message fits their title; the focused one wins ties.
        let titles: Vec<Topic> = ctx.tasks.iter().map(|t| Topic::cached(&t.title)).collect();
        let scores = target::scores(&msg.topic, &titles);
        let mut order: Vec<usize> = (0..ctx.tasks.len()).collect();
        let focused = |i: usize| ctx.active_task.as_deref() == Some(ctx.tasks[i].id.as_str());
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(focused(b).cmp(&focused(a))));
        for i in order {
            if out.len() >= 2 {
                break;
            }
            let task = &ctx.tasks[i];
            out.push(Decision::new(Intent::Continue, 0.5, format!("continue {}", task.title)).task(Some(&task.id)));
        }
        if out.len() < 2 && !(yes || no) {
            out.push(Decision::new(Intent::NewTask, 0.5, "a new goal"));
        }
        out.truncate(2);
        out
    }
}
