//! The note in two shapes: a few lines for prompts and phones, Markdown for the exported file.
//! Both show every entry in the order it was written (the note is a log, not a summary) and
//! flag stale ones with the files that moved.

use std::fmt::Write as _;

use crate::model::{Id, NoteEntry, NoteKind, Task};
use crate::runtime::one_line;

/// Longest entry text in the condensed form; the Markdown file keeps it whole.
const CONDENSED_TEXT: usize = 400;

/// One entry as readers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShownEntry {
    pub entry: NoteEntry,
    /// The files its evidence depends on (see `evidence_files`).
    pub files: Vec<String>,
    /// Of those, the ones changed since the entry's commit. Non-empty: stale.
    pub stale_because: Vec<String>,
}

impl ShownEntry {
    /// An entry with no file dependencies known (or none checked).
    pub fn new(entry: NoteEntry) -> Self {
        ShownEntry { entry, files: Vec::new(), stale_because: Vec::new() }
    }

    /// Stale because a cited file changed, or recorded as stale outright.
    pub fn is_stale(&self) -> bool {
        !self.stale_because.is_empty() || self.entry.kind == NoteKind::Stale
    }

    /// "stale (was verified; src/a.rs changed since abc1234)" or just the kind.
    fn label(&self) -> String {
        if self.stale_because.is_empty() || self.entry.kind == NoteKind::Stale {
            return self.entry.kind.to_string();
        }
        let since = self.entry.commit.as_deref().map(short_commit).unwrap_or("it was written");
        format!("stale (was {}; {} changed since {since})", self.entry.kind, self.stale_because.join(", "))
    }
}

/// A task's restart note: the headline fields and the entries, staleness already judged.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartNote {
    pub task_id: Id,
    pub title: String,
    pub goal: String,
    pub objective: Option<String>,
    pub reproduction: Option<String>,
    pub next_action: Option<String>,
    pub entries: Vec<ShownEntry>,
}

impl RestartNote {
    pub fn new(task: &Task, entries: Vec<ShownEntry>) -> Self {
        RestartNote {
            task_id: task.id,
            title: task.title.clone(),
            goal: task.goal.clone(),
            objective: nonblank(&task.objective),
            reproduction: nonblank(&task.reproduction),
            next_action: nonblank(&task.next_action),
            entries,
        }
    }

    /// Nothing has been recorded yet.
    pub fn is_empty(&self) -> bool {
        self.objective.is_none() && self.reproduction.is_none() && self.next_action.is_none() && self.entries.is_empty()
    }

    /// A few lines: for a new session's first prompt and for `/note` in chat. `None` when
    /// there is nothing to say.
    pub fn condensed(&self) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let mut lines = Vec::new();
        if let Some(objective) = &self.objective {
            lines.push(format!("objective: {}", one_line(objective, CONDENSED_TEXT)));
        }
        if let Some(reproduction) = &self.reproduction {
            lines.push(format!("reproduction: {}", one_line(reproduction, CONDENSED_TEXT)));
        }
        for shown in &self.entries {
            let mut line = format!("{}: {}", shown.label(), one_line(&shown.entry.text, CONDENSED_TEXT));
            let mut refs = vec![format!("#{}", shown.entry.id)];
            if !shown.entry.evidence.is_empty() {
                refs.push(format!("evidence: {}", shown.entry.evidence.join(", ")));
            }
            let _ = write!(line, " ({})", refs.join("; "));
            lines.push(line);
        }
        if let Some(next) = &self.next_action {
            lines.push(format!("next action: {}", one_line(next, CONDENSED_TEXT)));
        }
        Some(lines.join("\n"))
    }

    /// The whole note as Markdown, with authors, times and commits: the exported file.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Task {}: {}\n", self.task_id, one_line(&self.title, 200));
        let _ = writeln!(
            md,
            "<!-- Written by taskgate from its database; edits here are overwritten. Use /note to add to it. -->\n"
        );
        let objective = self.objective.clone().unwrap_or_else(|| self.goal.clone());
        field(&mut md, "Objective", Some(&objective));
        field(&mut md, "Reproduction", self.reproduction.as_deref());
        field(&mut md, "Next action", self.next_action.as_deref());
        md.push_str("## Entries\n\n");
        if self.entries.is_empty() {
            md.push_str("None yet.\n");
        }
        for shown in &self.entries {
            let e = &shown.entry;
            let _ = writeln!(md, "- **{}** #{}: {}", shown.label(), e.id, indent(e.text.trim()));
            let mut meta = vec![format!("by {}", e.author), e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)];
            if let Some(commit) = &e.commit {
                meta.push(format!("commit {}", short_commit(commit)));
            }
            let _ = writeln!(md, "  - {}", meta.join(" · "));
            if !e.evidence.is_empty() {
                let ids: Vec<String> = e.evidence.iter().map(|id| format!("`{id}`")).collect();
                let _ = writeln!(md, "  - evidence: {}", ids.join(", "));
            }
            if !shown.files.is_empty() {
                let files: Vec<String> = shown.files.iter().map(|f| format!("`{f}`")).collect();
                let _ = writeln!(md, "  - depends on: {}", files.join(", "));
            }
        }
        md
    }
}

fn field(md: &mut String, name: &str, value: Option<&str>) {
    let value = value.map(str::trim).filter(|v| !v.is_empty()).unwrap_or("(not set)");
    let _ = writeln!(md, "**{name}:** {}\n", indent(value));
}

/// Continuation lines indented so a multi-line text stays inside its list item.
fn indent(text: &str) -> String {
    text.lines().collect::<Vec<_>>().join("\n    ")
}

fn nonblank(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn short_commit(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
