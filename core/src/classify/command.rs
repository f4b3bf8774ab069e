//! Rule 2: explicit slash commands win.

use super::approval;
use super::decision::{Decision, Intent, Role, Scope};
use super::message::Msg;
use super::rules::Env;
use super::spawn;
use super::target::{self, Resolved};
use super::vocab::Class;

/// `/name[@bot] rest…` at the start of a message.
#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub name: String,
    pub bot: Option<String>,
    /// Byte offset where the arguments start.
    pub rest: usize,
}

pub(crate) fn parse(m: &Msg) -> Option<Command> {
    let s = &m.norm[m.lead..];
    let body = s.strip_prefix('/')?;
    let name_len = body.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
    if name_len == 0 {
        return None;
    }
    let name = &body[..name_len];
    let after = &body[name_len..];
    let (bot, tail) = match after.strip_prefix('@') {
        Some(b) => {
            let n = b.bytes().take_while(|c| c.is_ascii_alphanumeric() || *c == b'_').count();
            (Some(b[..n].to_owned()), &b[n..])
        }
        None => (None, after),
    };
    // `/new!`: a fresh session without the handoff turn (the router reads the `!`).
    let tail = if name == "new" { tail.strip_prefix('!').unwrap_or(tail) } else { tail };
    // `/api/v2 is down` is a path, not a command.
    if !tail.is_empty() && !tail.starts_with(char::is_whitespace) {
        return None;
    }
    Some(Command { name: name.to_owned(), bot, rest: m.norm.len() - tail.len() })
}

pub(crate) fn decide(env: &Env, cmd: &Command) -> Decision {
    let (ctx, m) = (env.ctx, env.msg);
    if let (Some(to), Some(me)) = (cmd.bot.as_deref(), env.bot)
        && !to.eq_ignore_ascii_case(me.trim_start_matches('@'))
    {
        return Decision::new(Intent::Ignore, 0.95, "command addressed to another bot");
    }
    let rest_empty = m.norm[cmd.rest..].trim().is_empty();
    let rest_scores = target::scores(&m.topic.slice(cmd.rest, m.norm.len()), &env.titles);
    let target = || match ctx.reply_to.as_deref() {
        Some(r) => Some(r),
        None => match target::named(ctx, &rest_scores) {
            Resolved::Found(t) => Some(t.id),
            _ => ctx.active_task.as_deref().or_else(|| (ctx.tasks.len() == 1).then(|| ctx.tasks[0].id.as_str())),
        },
    };
    match cmd.name.as_str() {
        "status" => {
            let global = m.hits.iter().any(|h| h.start >= cmd.rest && h.is(Class::StatusGlobal));
            let t = ctx.reply_to.as_deref().or_else(|| match target::named(ctx, &rest_scores) {
                Resolved::Found(t) => Some(t.id),
                _ if global => None,
                _ => ctx.active_task.as_deref(),
            });
            Decision::new(Intent::Status, 0.97, "/status").task(t)
        }
        "cancel" | "stop" | "abort" | "kill" => {
            let t = target().or_else(|| {
                let mut running = ctx.tasks.iter().filter(|t| t.status.is_active());
                match (running.next(), running.next()) {
                    (Some(t), None) => Some(t.id.as_str()),
                    _ => None,
                }
            });
            match t {
                Some(t) => Decision::new(Intent::Cancel, 0.97, "/cancel").task(Some(t)),
                None => Decision::clarify("/cancel: which task?"),
            }
        }
        "new" => {
            if rest_empty {
                return match target() {
                    Some(t) => Decision::new(Intent::NewSession, 0.97, "bare /new").task(Some(t)),
                    None => Decision::clarify("/new: nothing to refresh"),
                };
            }
            let agent = super::agents::actor_from(m, cmd.rest).map(|i| env.lex.agents[i as usize].as_str());
            match agent {
                Some(a) if !ctx.has_agent(a) => Decision::clarify(format!("agent {a} is not configured")),
                _ => Decision::new(Intent::NewTask, 0.95, "/new with a goal").agent(agent),
            }
        }
        "approve" | "deny" | "allow" | "reject" => {
            let yes = matches!(cmd.name.as_str(), "approve" | "allow");
            approval_command(env, yes, cmd.rest)
        }
        "review" => review(env, cmd.rest, target()),
        "continue" | "retry" => match target() {
            Some(t) => Decision::new(Intent::Continue, 0.9, "/continue").task(Some(t)),
            None => Decision::clarify("continue which task?"),
        },
        name => match env.lex.command_aliases.get(name) {
            Some(&agent) => {
                if rest_empty {
                    // Bare `/cc`: hand the current work to that agent.
                    let name = env.lex.agents[agent as usize].as_str();
                    return match target() {
                        Some(t) if ctx.has_agent(name) => {
                            Decision::new(Intent::Spawn, 0.8, "agent command on the current work")
                                .task(Some(t))
                                .agent(Some(name))
                                .role(Role::Editor)
                        }
                        _ => Decision::clarify("agent command without a goal or a task"),
                    };
                }
                spawn::agent_request(env, agent)
            }
            None => Decision::clarify(format!("unknown command /{name}")),
        },
    }
}

fn approval_command(env: &Env, yes: bool, rest: usize) -> Decision {
    let ctx = env.ctx;
    let m = env.msg;
    let pending = &ctx.pending_approvals;
    // An approval id given as an argument, else the replied task's, else the only one.
    let by_id = pending.iter().find(|a| m.toks.iter().any(|t| t.start >= rest && m.word(t) == a.id.to_lowercase()));
    let chosen = by_id.or_else(|| {
        let of_reply: Vec<_> = match ctx.reply_to.as_deref() {
            Some(r) => ctx.approvals_of(r).collect(),
            None => Vec::new(),
        };
        match (of_reply.len(), pending.len()) {
            (1, _) => Some(of_reply[0]),
            (0, 1) => Some(&pending[0]),
            _ => None,
        }
    });
    let Some(a) = chosen else {
        return Decision::clarify(if pending.is_empty() {
            "nothing is waiting for approval"
        } else {
            "several approvals pending; which one?"
        });
    };
    if yes {
        // `/approve always`, `/approve all`.
        let scope = if m.toks.iter().any(|t| t.start >= rest && m.word(t) == "all") {
            Scope::Always
        } else {
            approval::scope(m, rest)
        };
        Decision::new(Intent::Approve, 0.97, "/approve").task(Some(&a.task)).approval(&a.id, Some(scope))
    } else {
        Decision::new(Intent::Deny, 0.97, "/deny").task(Some(&a.task)).approval(&a.id, None)
    }
}

/// `/review [agent]`: a reviewer on the current work, by the named agent or the first
/// configured agent not yet working on the task.
fn review(env: &Env, rest: usize, target: Option<&str>) -> Decision {
    let ctx = env.ctx;
    let Some(t) = target else {
        return Decision::clarify("/review: which task?");
    };
    let named = env
        .msg
        .hits
        .iter()
        .find(|h| h.start >= rest && h.is(Class::Agent))
        .map(|h| env.lex.agents[h.agent as usize].as_str());
    let agent = match named {
        Some(a) if ctx.has_agent(a) => Some(a),
        Some(a) => return Decision::clarify(format!("agent {a} is not configured")),
        None => {
            let busy = ctx.task(t).map(|t| t.agents.as_slice()).unwrap_or_default();
            ctx.agents.iter().find(|a| !busy.contains(a)).map(String::as_str)
        }
    };
    match agent {
        Some(a) => Decision::new(Intent::Spawn, 0.95, "/review").task(Some(t)).agent(Some(a)).role(Role::Reviewer),
        None => Decision::clarify("/review: every configured agent is already on this task"),
    }
}
