//! The documentation's relative links lead somewhere: every linked file exists and every
//! `#anchor` names a heading of the linked page (GitHub's slugs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub fn trials() -> Vec<taskgate_tests::harness::Trial> {
    taskgate_tests::trials! {
        blocking: [
            relative_links_in_the_docs_resolve,
            slugs_follow_github,
        ],
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#').replace('`', "").as_str()));
        }
    }
    out
}

/// `[text](target)` targets outside code blocks and spans.
fn links(markdown: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    out
}

fn relative_links_in_the_docs_resolve() {
    let root = root();
    let mut pages: Vec<PathBuf> = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    assert!(pages.len() >= 10, "{pages:?}");
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            assert!(target.exists(), "{}: {link} does not exist", page.display());
            if !anchor.is_empty() {
                let headings = anchors(&std::fs::read_to_string(&target).unwrap());
                assert!(
                    headings.contains(anchor),
                    "{}: #{anchor} is not a heading of {file}: {headings:?}",
                    page.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked} links checked");
}

fn slugs_follow_github() {
    assert_eq!(slug("4a. Webhook mode"), "4a-webhook-mode");
    assert_eq!(slug("Feishu / Lark"), "feishu--lark");
    assert_eq!(slug("Log them in, as the service user"), "log-them-in-as-the-service-user");
}
