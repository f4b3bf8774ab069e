//! Isolation of executions in git worktrees, as rules: which execution works where (the project
//! directory, a worktree of its own, or where the work it reviews lives), what its branch is
//! called, and the sentences people read about a branch handed back (`/merge`, `/discard`).
//! The git commands themselves are the adapters' (`taskgate_adapters::worktree`).

use serde::{Deserialize, Serialize};

use crate::model::{Id, Role};
use crate::plan::{Effect, Plan};
use crate::reply::{Action, Button, ReplyKind};

/// How a project keeps the executions of one task apart (`isolation` in a `[[projects]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// A task's first editor works in the project directory; every other execution that may
    /// write (a second editor, a tester) gets a worktree of its own. The default for a git
    /// repository.
    Spawned,
    /// Every editor and tester gets a worktree of its own.
    Worktree,
    /// Everyone works in the project directory (the only choice outside git).
    Shared,
}

impl Isolation {
    /// The isolation a project gets when its config says nothing.
    pub fn default_for(is_git_repository: bool) -> Self {
        if is_git_repository { Isolation::Spawned } else { Isolation::Shared }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isolation::Spawned => "spawned",
            Isolation::Worktree => "worktree",
            Isolation::Shared => "shared",
        }
    }
}

/// Where one execution works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The project directory, as without isolation.
    Project,
    /// A new worktree of its own, branched from the state of the work it joins.
    OwnWorktree,
    /// Where the work it reviews lives (the task's editor), without writing there.
    ReadOnly,
}

/// Where an execution in `role` works under `isolation`. `first_editor`: it is the task's
/// first editor execution (the one a new task starts with).
pub fn placement(isolation: Isolation, role: Role, first_editor: bool) -> Placement {
    match (isolation, role) {
        // Outside isolation nothing changes, reviewers included (their prompt asks them not
        // to edit; nothing enforces it).
        (Isolation::Shared, _) => Placement::Project,
        (_, Role::Reviewer) => Placement::ReadOnly,
        (Isolation::Spawned, Role::Editor) if first_editor => Placement::Project,
        (_, Role::Editor | Role::Tester) => Placement::OwnWorktree,
    }
}

/// The execution whose work a new execution of `task` joins (branches from, or reviews): the
/// task's first editor, else its first execution. `executions` are `(id, role)` in creation
/// order, without the new one.
pub fn joined(executions: &[(Id, Role)]) -> Option<Id> {
    executions.iter().find(|(_, role)| *role == Role::Editor).or(executions.first()).map(|(id, _)| *id)
}

/// Where a new worktree for `role` starts from: a tester tests the work it joins (the
/// editor's current state, uncommitted changes included); an editor makes an attempt of its
/// own from the project's current state (which, under `spawned`, is the first editor's).
pub fn branches_from_joined(role: Role) -> bool {
    role == Role::Tester
}

/// `taskgate/<task>-<slug>`; with `execution`, `taskgate/<task>-<slug>-<execution>` (for a task
/// with more than one branch).
pub fn branch_name(task: Id, title: &str, execution: Option<Id>) -> String {
    let slug = slug(title);
    let mut name = if slug.is_empty() { format!("taskgate/{task}") } else { format!("taskgate/{task}-{slug}") };
    if let Some(execution) = execution {
        name.push_str(&format!("-{execution}"));
    }
    name
}

/// A branch-safe short form of a title: lowercase ASCII letters and digits joined by `-`, at
/// most 30 characters, cut at a word.
pub fn slug(title: &str) -> String {
    const MAX: usize = 30;
    let mut out = String::new();
    for word in title.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_ascii_lowercase();
        let extra = if out.is_empty() { word.len() } else { word.len() + 1 };
        if out.len() + extra > MAX {
            if out.is_empty() {
                out = word[..MAX].to_owned();
            }
            break;
        }
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(&word);
    }
    out
}

/// What became of a worktree, as recorded on its execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorktreeState {
    /// On disk, its branch not merged yet.
    Active,
    /// The worktree is gone (its task completed), its branch kept for `/merge`.
    Closed,
    /// Dropped with its branch (`/discard`).
    Removed,
}

impl WorktreeState {
    pub fn name(self) -> &'static str {
        match self {
            WorktreeState::Active => "active",
            WorktreeState::Closed => "closed",
            WorktreeState::Removed => "removed",
        }
    }

    /// Its branch still exists (it can be merged or discarded).
    pub fn has_branch(self) -> bool {
        matches!(self, WorktreeState::Active | WorktreeState::Closed)
    }

    pub fn parse(s: &str) -> Option<Self> {
        [WorktreeState::Active, WorktreeState::Closed, WorktreeState::Removed].into_iter().find(|w| w.name() == s)
    }
}

/// An execution's worktree, as recorded on it so it outlives the process that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worktree {
    pub execution: Id,
    pub task: Id,
    /// The project's own checkout (where `/merge` merges into).
    pub project_dir: String,
    /// The worktree's directory.
    pub path: String,
    pub branch: String,
    /// The commit the branch started from (what its diff is against).
    pub base: String,
    pub state: WorktreeState,
}

/// "3 files changed on taskgate/42-fix-login".
pub fn changed_line(files: usize, branch: &str) -> String {
    let noun = if files == 1 { "file" } else { "files" };
    format!("{files} {noun} changed on {branch}")
}

/// Adds the hand-back line and its Merge / Discard buttons to the turn's final message in
/// `plan` (the reply of kind `Final`), when the branch holds changes.
pub fn hand_back(plan: &mut Plan, execution: Id, files: usize, branch: &str) {
    if files == 0 {
        return;
    }
    let line = changed_line(files, branch);
    for effect in &mut plan.effects {
        if let Effect::Reply(reply) = effect
            && reply.kind == ReplyKind::Final
        {
            reply.text = format!("{}\n\n{line}", reply.text.trim_end());
            reply.buttons.push(Button { label: "Merge".into(), action: Action::Merge { execution } });
            reply.buttons.push(Button { label: "Discard".into(), action: Action::Discard { execution } });
            return;
        }
    }
}

/// What `/merge` did, or why it did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The project's branch moved forward to the execution's branch.
    FastForward { into: String, files: usize },
    /// A merge commit joins both.
    Merged { into: String, files: usize },
    /// The branch has nothing the project's branch lacks.
    UpToDate { into: String },
    /// Merging would conflict in these paths; nothing was touched.
    Conflict { into: String, paths: Vec<String>, with_uncommitted: bool },
    /// The project checkout has uncommitted changes in these paths; nothing was touched.
    Dirty { paths: Vec<String> },
    /// The project checkout is not on a branch.
    Detached,
}

/// The line the chat reads about `/merge` of `branch`.
pub fn merge_line(branch: &str, outcome: &MergeOutcome) -> String {
    match outcome {
        MergeOutcome::FastForward { into, files } => {
            format!("Merged {branch} into {into} (fast-forward, {}).", files_phrase(*files))
        }
        MergeOutcome::Merged { into, files } => {
            format!("Merged {branch} into {into} (merge commit, {}).", files_phrase(*files))
        }
        MergeOutcome::UpToDate { into } => format!("{into} already has everything on {branch}."),
        MergeOutcome::Conflict { into, paths, with_uncommitted } => {
            let with = if *with_uncommitted { "the uncommitted changes in the project" } else { into.as_str() };
            format!(
                "Not merged: {branch} conflicts with {with} in {}. Nothing was changed; rebase the branch (or ask its agent to), then /merge again.",
                list(paths)
            )
        }
        MergeOutcome::Dirty { paths } => format!(
            "Not merged: the project checkout has uncommitted changes ({}). Commit or stash them first, then /merge again; nothing was changed.",
            list(paths)
        ),
        MergeOutcome::Detached => {
            "Not merged: the project checkout is not on a branch. Check one out, then /merge again.".to_owned()
        }
    }
}

fn files_phrase(files: usize) -> String {
    if files == 1 { "1 file".to_owned() } else { format!("{files} files") }
}

/// At most five paths, then how many more.
fn list(paths: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut out = paths.iter().take(SHOWN).map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ");
    if paths.len() > SHOWN {
        out.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    out
}

/// `/merge`, `/discard`, with an optional execution (`/merge 7`, `/merge #7`) or branch name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchCommand {
    Merge(Target),
    Discard(Target),
}

/// Which branch a command names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The conversation's task's latest active branch.
    Latest,
    Execution(Id),
    Branch(String),
}

/// `/merge`, `/merge 7`, `/merge taskgate/42-fix-login`, `/discard …` (also `/merge@bot`);
/// `None` for anything else.
pub fn parse_command(text: &str) -> Option<BranchCommand> {
    let mut words = text.split_whitespace();
    let head = words.next()?;
    let command = head.split('@').next()?.to_ascii_lowercase();
    let make: fn(Target) -> BranchCommand = match command.as_str() {
        "/merge" => BranchCommand::Merge,
        "/discard" => BranchCommand::Discard,
        _ => return None,
    };
    let target = match (words.next(), words.next()) {
        (None, _) => Target::Latest,
        (Some(arg), None) => match arg.trim_start_matches('#').parse::<Id>() {
            Ok(id) => Target::Execution(id),
            Err(_) => Target::Branch(arg.to_owned()),
        },
        // More words than a target: not this command's shape; the whole text names a branch
        // nobody has, which is answered as such.
        (Some(_), Some(_)) => Target::Branch(text.to_owned()),
    };
    Some(make(target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::Reply;

    #[test]
    fn placement_follows_isolation_and_role() {
        use Placement::*;
        let cases = [
            (Isolation::Spawned, Role::Editor, true, Project),
            (Isolation::Spawned, Role::Editor, false, OwnWorktree),
            (Isolation::Spawned, Role::Tester, false, OwnWorktree),
            (Isolation::Spawned, Role::Reviewer, false, ReadOnly),
            (Isolation::Worktree, Role::Editor, true, OwnWorktree),
            (Isolation::Worktree, Role::Tester, false, OwnWorktree),
            (Isolation::Worktree, Role::Reviewer, false, ReadOnly),
            (Isolation::Shared, Role::Editor, false, Project),
            (Isolation::Shared, Role::Tester, false, Project),
            (Isolation::Shared, Role::Reviewer, false, Project),
        ];
        for (isolation, role, first, want) in cases {
            assert_eq!(placement(isolation, role, first), want, "{isolation:?} {role:?} first={first}");
        }
        assert_eq!(Isolation::default_for(true), Isolation::Spawned);
        assert_eq!(Isolation::default_for(false), Isolation::Shared);
    }

    #[test]
    fn the_joined_work_is_the_first_editors() {
        assert_eq!(joined(&[(3, Role::Reviewer), (4, Role::Editor), (5, Role::Editor)]), Some(4));
        assert_eq!(joined(&[(3, Role::Tester)]), Some(3));
        assert_eq!(joined(&[]), None);
        assert!(branches_from_joined(Role::Tester));
        assert!(!branches_from_joined(Role::Editor));
    }

    #[test]
    fn branch_names_are_short_and_safe() {
        assert_eq!(branch_name(42, "Fix the login!", None), "taskgate/42-fix-the-login");
        assert_eq!(branch_name(42, "Fix login", Some(7)), "taskgate/42-fix-login-7");
        assert_eq!(branch_name(9, "日本語", None), "taskgate/9");
        assert_eq!(slug("make the button green and also the header and the footer"), "make-the-button-green-and-also");
        assert_eq!(slug("a".repeat(50).as_str()), "a".repeat(30));
        assert_eq!(slug("../../etc/passwd; rm -rf"), "etc-passwd-rm-rf");
    }

    #[test]
    fn hand_back_adds_a_line_and_buttons_to_the_final_message() {
        let mut plan = Plan::default();
        plan.push(Effect::Reply(Reply::text("status")));
        plan.push(Effect::Reply(Reply::text("Done.\n").kind(ReplyKind::Final)));
        hand_back(&mut plan, 7, 3, "taskgate/42-fix-login");
        let Effect::Reply(last) = &plan.effects[1] else { panic!() };
        assert_eq!(last.text, "Done.\n\n3 files changed on taskgate/42-fix-login");
        assert_eq!(last.buttons.len(), 2);
        assert_eq!(last.buttons[0].action, Action::Merge { execution: 7 });
        let Effect::Reply(first) = &plan.effects[0] else { panic!() };
        assert!(first.buttons.is_empty());

        let before = plan.clone();
        hand_back(&mut plan, 7, 0, "taskgate/42-fix-login");
        assert_eq!(plan, before, "no changes, no line");
        assert_eq!(changed_line(1, "b"), "1 file changed on b");
    }

    #[test]
    fn merge_lines_say_what_happened() {
        let conflict = MergeOutcome::Conflict {
            into: "main".into(),
            paths: (1..=7).map(|i| format!("f{i}")).collect(),
            with_uncommitted: false,
        };
        let line = merge_line("taskgate/1-x", &conflict);
        assert!(line.starts_with("Not merged: taskgate/1-x conflicts with main in `f1`, `f2`"), "{line}");
        assert!(line.contains("and 2 more"), "{line}");
        let ff = merge_line("b", &MergeOutcome::FastForward { into: "main".into(), files: 1 });
        assert_eq!(ff, "Merged b into main (fast-forward, 1 file).");
        let dirty = merge_line("b", &MergeOutcome::Dirty { paths: vec!["a.txt".into()] });
        assert!(dirty.contains("uncommitted changes (`a.txt`)"), "{dirty}");
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse_command("/merge"), Some(BranchCommand::Merge(Target::Latest)));
        assert_eq!(parse_command("/merge@taskgate_bot #7"), Some(BranchCommand::Merge(Target::Execution(7))));
        assert_eq!(
            parse_command("/discard taskgate/4-x"),
            Some(BranchCommand::Discard(Target::Branch("taskgate/4-x".into())))
        );
        assert_eq!(parse_command("/merged"), None);
        assert_eq!(parse_command("merge it"), None);
        assert_eq!(WorktreeState::parse("closed"), Some(WorktreeState::Closed));
        assert!(WorktreeState::Closed.has_branch() && !WorktreeState::Removed.has_branch());
    }
}
