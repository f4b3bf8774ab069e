//! The note in two shapes: a few lines for prompts and phones, Markdown for the exported file.
//! Both show every entry in the order it was written (the note is a log, not a summary) and
//! flag stale ones with the files that moved.

use std::fmt::Write as _;

use super::capture::{Captured, CapturedEntry, Section};
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
    /// What the gateway captured from the timeline itself (see `capture`): below the agents'
    /// entries, which win.
    pub captured: Captured,
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
            captured: Captured::default(),
        }
    }

    /// The note with what the gateway captured from the timeline.
    pub fn with_captured(mut self, captured: Captured) -> Self {
        self.captured = captured;
        self
    }

    /// Nothing has been recorded yet.
    pub fn is_empty(&self) -> bool {
        self.objective.is_none()
            && self.reproduction.is_none()
            && self.next_action.is_none()
            && self.entries.is_empty()
            && self.captured.is_empty()
    }

    /// The next action: the one an agent or person set wins over the captured one.
    pub fn next(&self) -> Option<&str> {
        self.next_action.as_deref().or(self.captured.next_action.as_deref())
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
        for section in Section::ALL {
            let mut entries = self.captured.section(section).peekable();
            if entries.peek().is_none() {
                continue;
            }
            lines.push(format!("{}:", section.title()));
            lines.extend(entries.map(|e| captured_line(e, &e.text)));
        }
        if let Some(next) = self.next() {
            lines.push(format!("next action: {}", one_line(next, CONDENSED_TEXT)));
        }
        Some(lines.join("\n"))
    }

    /// The note for a fresh session's first prompt, at most `budget` characters. Headline
    /// fields and the agents' entries first (verified ones before the rest, newest first),
    /// then what the gateway captured, newest first: the newest whole, older ones one short
    /// line each, the oldest left out (with a line saying so) when even that does not fit.
    /// Shown in the usual order. `None` when there is nothing to say.
    pub fn seed(&self, budget: usize) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        // (slot in the output, full line, short line), in priority order.
        let mut head: Vec<String> = Vec::new();
        if let Some(objective) = &self.objective {
            head.push(format!("objective: {}", one_line(objective, 300)));
        }
        if let Some(reproduction) = &self.reproduction {
            head.push(format!("reproduction: {}", one_line(reproduction, 300)));
        }
        let next = self.next().map(|n| format!("next action: {}", one_line(n, 300)));
        let mut used: usize = head.iter().chain(next.iter()).map(|l| l.chars().count() + 1).sum();
        let more_line = |n: usize| format!("(+{n} older entries: see the full note, /note or the console)");
        // Room kept for the "more" line.
        let reserve = more_line(9999).chars().count() + 1;

        let mut agent: Vec<(usize, &ShownEntry)> = self.entries.iter().enumerate().collect();
        agent.sort_by_key(|(i, e)| (e.entry.kind != NoteKind::Verified || e.is_stale(), std::cmp::Reverse(*i)));
        let mut agent_lines: Vec<Option<String>> = vec![None; self.entries.len()];
        let mut captured_lines: Vec<Option<String>> = vec![None; self.captured.entries.len()];
        let mut left_out = 0;
        let fits = |line: String, used: &mut usize| -> Option<String> {
            let n = line.chars().count() + 1;
            (*used + n + reserve <= budget).then(|| {
                *used += n;
                line
            })
        };
        for (i, shown) in agent {
            let full = format!("{}: {} (#{})", shown.label(), one_line(&shown.entry.text, 300), shown.entry.id);
            let short = format!("{}: {} (#{})", shown.label(), one_line(&shown.entry.text, 100), shown.entry.id);
            agent_lines[i] = fits(full, &mut used).or_else(|| fits(short, &mut used));
            left_out += usize::from(agent_lines[i].is_none());
        }
        // Headings cost a line each; counted when a section gets its first line.
        let mut headed = [false; Section::ALL.len()];
        let whole = 8; // the newest captured entries kept whole
        for (rank, (i, e)) in self.captured.entries.iter().enumerate().rev().enumerate() {
            let slot = Section::ALL.iter().position(|s| *s == e.section).unwrap_or(0);
            let heading = if headed[slot] { 0 } else { e.section.title().chars().count() + 2 };
            used += heading;
            let full = captured_line(e, &e.text);
            let short = captured_line(e, &e.short);
            captured_lines[i] = if rank < whole {
                fits(full, &mut used).or_else(|| fits(short, &mut used))
            } else {
                fits(short, &mut used)
            };
            match &captured_lines[i] {
                Some(_) => headed[slot] = true,
                None => {
                    used -= heading;
                    left_out += 1;
                }
            }
        }
        let mut lines = head;
        lines.extend(agent_lines.into_iter().flatten());
        for section in Section::ALL {
            let chosen: Vec<String> = self
                .captured
                .entries
                .iter()
                .zip(&captured_lines)
                .filter(|(e, l)| e.section == section && l.is_some())
                .filter_map(|(_, l)| l.clone())
                .collect();
            if !chosen.is_empty() {
                lines.push(format!("{}:", section.title()));
                lines.extend(chosen);
            }
        }
        if left_out > 0 {
            lines.push(more_line(left_out));
        }
        lines.extend(next);
        let text = lines.join("\n");
        // Headline fields alone can outgrow a tiny budget: cut, never overflow.
        Some(if text.chars().count() > budget { text.chars().take(budget).collect() } else { text })
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
        field(&mut md, "Next action", self.next());
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
        if !self.captured.entries.is_empty() {
            md.push_str("\n## Captured by taskgate\n\n");
            md.push_str("From the task's timeline: what people asked and what the agents did.\n");
        }
        for section in Section::ALL {
            let mut entries = self.captured.section(section).peekable();
            if entries.peek().is_none() {
                continue;
            }
            let mut title = section.title().to_owned();
            title[..1].make_ascii_uppercase();
            let _ = writeln!(md, "\n### {title}\n");
            for e in entries {
                let at = e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let _ = writeln!(md, "{} ({at}, event {})", captured_line(e, &e.text), e.event);
            }
        }
        md
    }
}

/// A captured entry as one line, stale marking and branch included.
fn captured_line(e: &CapturedEntry, text: &str) -> String {
    let mut line = format!("- {text}");
    if let Some(branch) = &e.branch {
        let _ = write!(line, " [branch {branch}]");
    }
    if !e.stale_because.is_empty() {
        let _ = write!(line, " (stale: {} changed since)", e.stale_because.join(", "));
    }
    line
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
