//! Topic overlap between a message and task titles.
//!
//! A topic is a bag of weighted keys: stemmed English content words, identifiers and versions
//! compared whole, CJK bigrams, and bilingual *concepts* ("dark mode" = 暗色模式) so that a
//! Chinese message can name an English task and back. Generic engineering words ("fix", "page")
//! weigh little: they appear in every title and name none.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use super::text::{Tok, TokKind, canon_word, is_word_char, normalize, stem, tokens};

/// Overlap at or above this names a task (one specific word, a number, a concept).
pub(crate) const NAMES: f32 = 0.9;

const W_CONCEPT: f32 = 1.2;
const W_GENERIC_CONCEPT: f32 = 0.3;
const W_IDENT: f32 = 1.2;
const W_WORD: f32 = 1.0;
const W_SHORT: f32 = 0.5;
const W_GENERIC: f32 = 0.3;
/// A two-character Chinese word is as specific as an English one...
const W_BIGRAM: f32 = 0.9;
/// ...but a run of n characters yields n-1 bigrams, so as new content each counts less.
const W_BIGRAM_NOVEL: f32 = 0.5;
/// A lone CJK character counts as content but never as a match (too ambiguous).
const W_CJK_SINGLE: f32 = 0.4;

/// Bilingual concepts. The first entry names the concept; `*` lifts the end boundary.
#[rustfmt::skip]
const CONCEPTS: &[&[&str]] = &[
    &["darkmode", "dark mode", "dark-mode", "dark theme", "night mode", "暗色", "深色", "夜间模式", "暗黑模式", "黑暗模式"],
    &["lightmode", "light mode", "light theme", "亮色", "浅色"],
    &["theme", "theme", "themes", "theming", "主题"],
    &["settings", "settings", "setting", "preferences", "设置", "偏好"],
    &["button", "button", "buttons", "btn", "按钮"],
    &["migration", "migration", "migrations", "migrate", "migrating", "迁移"],
    &["database", "database", "databases", "db", "postgres", "postgresql", "mysql", "sqlite", "数据库"],
    &["schema", "schema", "schemas", "表结构"],
    &["column", "column", "columns", "field", "fields", "字段", "列"],
    &["index", "index", "indexes", "indices", "索引"],
    &["flaky", "flaky", "flake", "flakes", "flakiness", "intermittent*", "sporadic*", "偶发", "偶尔", "不稳定", "时好时坏"],
    &["ci", "ci", "pipeline", "pipelines", "github actions", "workflow", "workflows", "流水线", "持续集成"],
    &["build", "build", "builds", "building", "compile", "compilation", "构建", "编译", "打包"],
    &["lint", "lint", "linter", "linting", "eslint", "clippy", "代码检查"],
    &["routing", "route", "routes", "routing", "router", "路由"],
    &["release", "release", "releases", "release notes", "changelog", "changelogs", "发布", "发版", "版本说明", "更新日志", "发布说明"],
    &["login", "login", "log in", "logins", "sign in", "signin", "sign-in", "登录", "登陆"],
    &["logout", "logout", "log out", "sign out", "登出", "退出登录"],
    &["signup", "signup", "sign up", "register", "registration", "注册"],
    &["auth", "auth", "authentication", "authn", "authz", "authorization", "鉴权", "认证", "授权"],
    &["permission", "permission", "permissions", "权限"],
    &["invite", "invite", "invites", "invitation", "invitations", "邀请"],
    &["log", "log", "logs", "logging", "日志"],
    &["perf", "performance", "perf", "latency", "speed", "faster", "slow", "slowness", "性能", "延迟", "速度", "加载慢", "卡顿"],
    &["2fa", "2fa", "two-factor", "two factor", "mfa", "totp", "otp", "二次验证", "双因素", "两步验证", "双重验证"],
    &["cache", "cache", "caches", "caching", "缓存"],
    &["deploy", "deploy", "deploys", "deployment", "deployments", "部署", "上线"],
    &["docs", "docs", "doc", "documentation", "document", "documenting", "readme", "文档"],
    &["endpoint", "endpoint", "endpoints", "接口"],
    &["css", "css", "stylesheet", "styles", "styling", "样式"],
    &["color", "color", "colors", "colour", "colours", "颜色", "配色"],
    &["timeout", "timeout", "timeouts", "time out", "timed out", "times out", "超时"],
    &["upload", "upload", "uploads", "uploading", "上传"],
    &["download", "download", "downloads", "下载"],
    &["search", "search", "搜索", "检索"],
    &["payment", "payment", "payments", "billing", "checkout", "支付", "付款", "结账"],
    &["notification", "notification", "notifications", "notify", "通知", "推送"],
    &["email", "email", "emails", "e-mail", "mail", "邮件", "邮箱"],
    &["password", "password", "passwords", "密码"],
    &["ratelimit", "rate limit", "rate limiting", "rate-limit", "throttl*", "限流"],
    &["memoryleak", "memory leak", "leak", "leaks", "内存泄漏", "泄漏"],
    &["memory", "memory", "内存"],
    &["dependency", "dependency", "dependencies", "deps", "依赖"],
    &["version", "version", "versions", "版本"],
    &["config", "config", "configs", "configuration", "配置"],
    &["i18n", "i18n", "translation", "translations", "localization", "翻译", "国际化", "多语言"],
    &["mobile", "mobile", "phone", "ios", "android", "手机", "移动端"],
    &["save", "cloud save", "cloud saves", "save game", "save file", "savegame", "存档", "云存档"],
    &["backfill", "backfill", "backfills", "backfilling", "回填", "补数"],
    &["behaviortree", "behaviour tree", "behavior tree", "behaviour trees", "behavior trees", "bt", "行为树"],
    &["refund", "refund", "refunds", "退款"],
    &["crash", "crash", "crashes", "crashing", "crash reporting", "崩溃", "闪退"],
    &["font", "font", "fonts", "glyph", "glyphs", "字体", "字库"],
    &["framerate", "frame rate", "framerate", "fps", "帧率", "掉帧"],
    &["alert", "alert", "alerts", "alerting", "告警", "报警"],
    &["monitoring", "monitoring", "monitor", "metrics", "observability", "监控", "指标"],
    &["rollback", "rollback", "roll back", "rollbacks", "回滚"],
    &["certificate", "certificate", "certificates", "cert", "certs", "tls", "ssl", "证书"],
    &["subscription", "subscription", "subscriptions", "订阅"],
    &["invoice", "invoice", "invoices", "发票", "账单"],
    &["streaming", "live stream", "livestream", "live streaming", "streaming", "broadcast", "直播", "推流", "开播", "停播"],
    &["admin", "admin", "admin panel", "back office", "backoffice", "后台", "管理后台"],
    &["script", "script", "scripts", "脚本"],
    &["droptable", "drop table", "drop the table", "删表"],
    &["audio", "audio", "sound", "sounds", "sfx", "mixer", "音效", "音频", "混音"],
    &["terraform", "terraform", "tf", "tofu"],
    &["kubernetes", "kubernetes", "k8s", "kubectl", "helm", "cluster", "集群"],
    &["replica", "replica", "replicas", "副本"],
    &["sampling", "sampling", "sample rate", "sampling rate", "采样", "采样率"],
    &["partition", "partition", "partitions", "partitioning", "分区"],
    &["model", "model", "models", "模型"],
    &["training", "training", "train", "fine-tune", "finetune", "训练", "微调"],
    &["consumer", "consumer", "consumers", "消费者", "消费"],
    &["threshold", "threshold", "thresholds", "阈值"],
    &["privacy", "privacy", "gdpr", "pii", "隐私", "脱敏"],
    &["encryption", "encryption", "encrypt", "encrypted", "加密"],
    &["retention", "retention", "保留", "留存"],
    &["sync", "sync", "syncing", "synchronization", "同步"],
    &["offline", "offline", "离线"],
    &["storage", "storage", "存储"],
    &["conflict", "conflict", "conflicts", "冲突"],
    &["onboarding", "onboarding", "tutorial", "walkthrough", "引导", "新手引导", "教程"],
    &["screenshot", "screenshot", "screenshots", "截图"],
    &["animation", "animation", "animations", "animate", "动画"],
    &["map", "map", "maps", "地图"],
    &["location", "location", "geolocation", "gps", "定位", "位置"],
    &["video", "video", "videos", "视频"],
    &["comment", "comment", "comments", "评论"],
    &["feed", "feed", "timeline", "时间线", "信息流"],
    &["refresh", "refresh", "reload", "刷新"],
    &["delivery", "delivery", "deliveries", "配送", "外卖"],
    &["inventory", "inventory", "stock", "库存"],
    &["shipping", "shipping", "shipment", "物流", "发货"],
    &["coupon", "coupon", "coupons", "discount", "promo code", "优惠券", "折扣"],
    &["cookie", "cookie", "cookies", "cookie banner", "consent banner"],
    &["worker", "worker", "workers", "后台任务"],
    &["proxy", "proxy", "nginx", "ingress", "代理", "反向代理"],
    &["tax", "tax", "taxes", "vat", "税", "税务", "税费"],
    &["audit", "audit log", "audit logs", "audit trail", "审计日志"],
    &["lobby", "lobby", "matchmaking", "大厅", "匹配"],
    &["rollback", "rollback", "roll back", "回滚"],
    &["script", "script", "scripts", "脚本"],
    &["token", "token", "tokens", "令牌"],
    &["session", "session", "sessions", "会话"],
    &["docker", "docker", "dockerfile", "container", "containers", "image", "容器", "镜像"],
    &["frontend", "frontend", "front-end", "前端"],
    &["backend", "backend", "back-end", "后端"],
    &["sidebar", "sidebar", "side bar", "侧边栏"],
    &["navbar", "navbar", "nav bar", "navigation", "导航"],
    &["modal", "modal", "dialog", "popup", "弹窗", "对话框"],
    &["form", "form", "forms", "表单"],
    &["avatar", "avatar", "avatars", "头像"],
    &["image", "images", "picture", "图片"],
    &["export", "export", "exports", "导出"],
    &["import", "import", "imports", "导入"],
    &["report", "report", "reports", "报表", "报告"],
    &["chart", "chart", "charts", "graph", "图表"],
    &["table", "table", "tables", "表格"],
    &["header", "header", "headers", "请求头", "头部"],
    &["footer", "footer", "页脚"],
    &["webhook", "webhook", "webhooks", "回调"],
    &["queue", "queue", "queues", "队列"],
    &["cron", "cron", "scheduled job", "定时任务"],
    &["backup", "backup", "backups", "备份"],
    &["upgrade", "upgrade", "upgrades", "bump", "升级"],
    &["security", "security", "vulnerability", "vulnerabilities", "cve", "安全", "漏洞"],
    &["api", "api", "apis"],
    &["order", "order", "orders", "订单"],
    &["user", "user", "users", "用户"],
    &["team", "team", "teams", "团队"],
    &["profile", "profile", "profiles", "个人资料", "个人主页"],
    &["dashboard", "dashboard", "dashboards", "仪表盘", "看板"],
    &["test", "test", "tests", "testing", "spec", "specs", "测试", "单测", "用例"],
    &["error", "error", "errors", "exception", "exceptions", "报错", "错误", "异常"],
    &["page", "page", "pages", "页面", "页"],
    &["bug", "bug", "bugs", "issue", "issues", "问题"],
];

/// Concepts that appear in nearly every title; they support a match but never make one.
const GENERIC_CONCEPTS: &[&str] = &["test", "error", "page", "bug", "user", "api", "version"];

#[rustfmt::skip]
const STOPWORDS: &[&str] = &[
    "a", "an", "the", "to", "for", "of", "in", "on", "at", "by", "with", "from", "and", "or", "but",
    "so", "is", "are", "was", "were", "be", "been", "being", "am", "it", "it's", "its", "this",
    "that", "these", "those", "i", "i'm", "you", "you're", "we", "we're", "they", "he", "she", "me",
    "my", "our", "your", "them", "their", "there", "here", "what", "what's", "which", "who", "how",
    "when", "where", "why", "do", "does", "did", "done", "can", "could", "would", "should", "will",
    "just", "only", "also", "too", "very", "really", "now", "then", "please", "pls", "hey", "um",
    "uh", "ok", "okay", "like", "some", "any", "all", "more", "less", "up", "out", "about", "into",
    "over", "after", "before", "not", "no", "yes", "if", "as", "than", "get", "gets", "got", "has",
    "have", "had", "let", "lets", "let's", "one", "thing", "things", "btw", "maybe", "basically",
    "still", "again", "same", "etc", "via", "per", "vs", "don't", "dont", "doesn't", "isn't",
    "it'll", "that's", "there's", "something", "anything", "everything", "someone", "anyone", "us",
    "him", "her", "his", "hers", "mine", "yours", "ours", "theirs", "myself", "yourself", "itself",
    "also", "either", "both", "each", "few", "many", "much", "own", "other", "another", "such",
    "sure", "well", "yet", "while", "since", "until", "because", "though", "although", "whether",
    "new", "old", "right", "left", "way", "bit", "lot", "kind", "sort", "guess", "think", "know",
    "see", "look", "looks", "want", "need", "needs", "seems", "seem", "go", "going", "gonna",
    "wanna", "gotta", "let's", "thanks", "thank", "hi", "hello", "lol", "hmm", "oh", "ah", "yeah",
    "yep", "nope", "thing", "stuff", "say", "says", "said", "tell", "told", "give", "take", "put",
    "keep", "kept", "use", "using", "used", "try", "tried", "able", "sometimes", "always", "never",
    "ever", "already", "soon", "later", "today", "tomorrow", "yesterday", "time", "times", "first",
    "last", "next", "pr",
];

/// Words every engineering title shares; they may support a match but never make one.
#[rustfmt::skip]
const GENERIC: &[&str] = &[
    "fix", "bug", "issu", "problem", "error", "page", "test", "code", "file", "add", "updat",
    "chang", "make", "featur", "support", "work", "run", "new", "data", "function", "method",
    "class", "valu", "list", "item", "app", "main", "step", "job", "task", "write", "remov",
    "clean", "debug", "investigat", "implement", "creat", "build", "set", "small", "big", "part",
    "thing", "correct", "proper", "properly", "broken", "fail", "failur", "failing", "check",
    "handl", "logic", "flow", "case", "mode", "line", "lines", "button", "api",
];

/// CJK function characters: they split runs and are never content.
fn is_cjk_stop(c: char) -> bool {
    "的了吗呢吧啊呀哦嘛么把给在是也都就还和与跟这那个一下我你他她它们帮请让叫再又很太没不别要会能得地着先呗哈嗯么啦几些"
        .contains(c)
}

struct Glossary {
    ac: AhoCorasick,
    /// Per pattern: concept index, needs start / end boundary.
    info: Vec<(u16, bool, bool)>,
    names: Vec<&'static str>,
}

static GLOSSARY: LazyLock<Glossary> = LazyLock::new(|| {
    let mut pats = Vec::new();
    let mut info = Vec::new();
    let mut names = Vec::new();
    for (i, c) in CONCEPTS.iter().enumerate() {
        names.push(c[0]);
        for p in &c[1..] {
            let (p, open) = match p.strip_suffix('*') {
                Some(p) => (p, true),
                None => (*p, false),
            };
            let first = p.chars().next().unwrap_or(' ');
            let last = p.chars().next_back().unwrap_or(' ');
            pats.push(p);
            info.push((i as u16, is_word_char(first), !open && is_word_char(last)));
        }
    }
    let ac = AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostLongest)
        .kind(Some(AhoCorasickKind::ContiguousNFA))
        .build(&pats)
        .expect("glossary compiles");
    Glossary { ac, info, names }
});

/// FNV-1a as a `Hasher`: word sets are small and hot, SipHash's DoS resistance buys nothing.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvSet<T> = HashSet<T, BuildHasherDefault<Fnv>>;

static STOP: LazyLock<FnvSet<&'static str>> = LazyLock::new(|| STOPWORDS.iter().copied().collect());
/// Stems of [`GENERIC`] (the list holds plain words or stems; both stem to the same key).
static GENERIC_SET: LazyLock<FnvSet<String>> = LazyLock::new(|| GENERIC.iter().map(|w| stem(w).to_owned()).collect());

/// One topic key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    pub hash: u64,
    pub weight: f32,
    /// Byte offset in the text it came from.
    pub pos: usize,
    /// Lone CJK characters are content but never match.
    pub matchable: bool,
    /// Weight as new content (see [`Topic::novel`]).
    pub novel: f32,
}

/// The weighted content of a text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Topic {
    pub keys: Vec<Key>,
}

impl Topic {
    /// The topic of a task title (or any text without vocabulary to exclude).
    pub fn of_text(text: &str) -> Self {
        let norm = normalize(text);
        let toks = tokens(&norm);
        Self::build(&norm, &toks, &[])
    }

    /// [`Topic::of_text`] through a small per-thread cache: task titles and approval actions
    /// recur with every message of a conversation, so their topics are built once.
    pub fn cached(text: &str) -> Self {
        TOPIC_CACHE.with_borrow_mut(|cache| {
            let key = hash(b"t", text);
            if let Some((t, topic)) = cache.get(&key)
                && **t == *text
            {
                return topic.clone();
            }
            let topic = Self::of_text(text);
            if cache.len() >= TOPIC_CACHE_SIZE {
                cache.clear();
            }
            cache.insert(key, (text.into(), topic.clone()));
            topic
        })
    }

    /// The topic of normalized text, skipping bytes marked in `covered` (vocabulary words).
    pub fn build(norm: &str, toks: &[Tok], covered: &[bool]) -> Self {
        let g = &*GLOSSARY;
        let is_cov = |i: usize| covered.get(i).copied().unwrap_or(false);
        let mut keys = Vec::with_capacity(toks.len() + 4);
        let mut concept_mask = vec![false; norm.len()];
        for m in g.ac.find_iter(norm) {
            let (ci, bs, be) = g.info[m.pattern().as_usize()];
            if (bs && norm[..m.start()].chars().next_back().is_some_and(is_word_char))
                || (be && norm[m.end()..].chars().next().is_some_and(is_word_char))
            {
                continue;
            }
            let name = g.names[ci as usize];
            let weight = if GENERIC_CONCEPTS.contains(&name) { W_GENERIC_CONCEPT } else { W_CONCEPT };
            // A concept inside a vocabulary phrase ("flaky" as a problem word) still names
            // the topic, but a generic one there ("write tests") adds nothing.
            if weight == W_GENERIC_CONCEPT && (m.start()..m.end()).all(is_cov) {
                continue;
            }
            concept_mask[m.start()..m.end()].iter_mut().for_each(|b| *b = true);
            keys.push(Key { hash: hash(b"#", name), weight, pos: m.start(), matchable: true, novel: weight });
        }
        for t in toks {
            match t.kind {
                TokKind::Word => {
                    // Vocabulary words are function, not topic; a word inside a concept
                    // is kept too (same position) so that either spelling can match.
                    if (t.start..t.end).all(is_cov) && !concept_mask[t.start] {
                        continue;
                    }
                    let w = &norm[t.start..t.end];
                    if STOP.contains(w) {
                        continue;
                    }
                    push_word(&mut keys, w, t.start);
                }
                TokKind::Cjk => push_cjk(&mut keys, norm, t, |i| is_cov(i) || concept_mask[i]),
            }
        }
        keys.sort_by_key(|k| k.pos);
        Self { keys }
    }

    /// Groups of keys that stand for the same words (one concept and its plain word).
    fn groups(&self) -> impl Iterator<Item = &[Key]> {
        self.keys.chunk_by(|a, b| a.pos == b.pos)
    }

    /// How much of `self` also appears in `other`: per position the heaviest matching key,
    /// each distinct key counted once.
    pub fn overlap(&self, other: &Topic) -> f32 {
        let mut seen: Vec<u64> = Vec::new();
        let mut s = 0.0;
        for g in self.groups() {
            let best = g
                .iter()
                .filter(|k| k.matchable && !seen.contains(&k.hash))
                .filter(|k| other.keys.iter().any(|o| o.matchable && o.hash == k.hash))
                .max_by(|a, b| a.weight.total_cmp(&b.weight));
            if let Some(k) = best {
                seen.push(k.hash);
                s += k.weight;
            }
        }
        s
    }

    /// Weight of the positions before byte `before` whose keys appear in none of `others`:
    /// what the text says that no task title does.
    pub fn novel(&self, others: &[Topic], before: usize) -> f32 {
        let known = |k: &Key| others.iter().any(|o| o.keys.iter().any(|x| x.hash == k.hash));
        self.groups()
            .filter(|g| g[0].pos < before && !g.iter().any(known))
            .map(|g| g.iter().map(|k| k.novel).fold(0.0, f32::max))
            .sum()
    }

    /// Keys restricted to a byte range of the source text.
    pub fn slice(&self, from: usize, to: usize) -> Topic {
        Topic { keys: self.keys.iter().filter(|k| k.pos >= from && k.pos < to).copied().collect() }
    }
}

fn push_word(keys: &mut Vec<Key>, w: &str, pos: usize) {
    let w = canon_word(w);
    // "502s", "403ing": a status code with an English ending is still the code.
    let digits = w.bytes().take_while(u8::is_ascii_digit).count();
    let w = if digits >= 3 && matches!(&w[digits..], "s" | "ing" | "ed" | "es") { &w[..digits] } else { w };
    let has_digit = w.bytes().any(|b| b.is_ascii_digit());
    let ident = has_digit || w.contains('_') || w.contains('.');
    // A release `2.3.0` is named by `2.3`.
    let key: &str = if has_digit && w.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let mut parts = w.splitn(3, '.');
        match (parts.next(), parts.next()) {
            (Some(a), Some(b)) => &w[..a.len() + 1 + b.len()],
            _ => w,
        }
    } else {
        stem(w)
    };
    let weight = if ident {
        // "10 minutes", "50 runs": small counts say little; `403`, `2.3`, `owner_id` say a lot.
        if key.len() <= 2 && key.bytes().all(|b| b.is_ascii_digit()) || key.len() <= 1 { W_SHORT } else { W_IDENT }
    } else if GENERIC_SET.contains(key) {
        W_GENERIC
    } else if key.len() <= 2 {
        W_SHORT
    } else {
        W_WORD
    };
    keys.push(Key { hash: hash(b"w", key), weight, pos, matchable: true, novel: weight });
    // A compound also names its head: "autovacuum" is about "vacuum".
    if !ident
        && let Some(rest) = COMPOUND_PREFIXES.iter().find_map(|p| key.strip_prefix(p))
        && rest.len() >= 4
    {
        keys.push(Key { hash: hash(b"w", stem(rest)), weight: weight * 0.8, pos, matchable: true, novel: weight });
    }
    // An identifier also names its parts: `customer_ltv` is "the ltv one".
    if ident && (w.contains('_') || w.contains('.')) {
        for part in w.split(['_', '.']).filter(|p| p.len() >= 3 && p.bytes().all(|b| b.is_ascii_alphabetic())) {
            let k = stem(part);
            let wt = if GENERIC_SET.contains(k) { W_GENERIC } else { W_PART };
            keys.push(Key { hash: hash(b"w", k), weight: wt, pos, matchable: true, novel: weight });
        }
    }
    // A shared five-letter head ("gradle" / "gradlew") supports a match but never makes one.
    if !ident && key.len() >= 5 && key.is_ascii() && weight >= W_WORD {
        keys.push(Key { hash: hash(b"p", &key[..5]), weight: W_PREFIX, pos, matchable: true, novel: weight });
    }
}

/// Weight of one part of an identifier.
const W_PART: f32 = 0.9;
/// Weight of a shared word head.
const W_PREFIX: f32 = 0.7;

const COMPOUND_PREFIXES: &[&str] =
    &["auto", "pre", "post", "sub", "multi", "over", "under", "micro", "web", "cross", "hot"];

fn push_cjk(keys: &mut Vec<Key>, norm: &str, t: &Tok, skip: impl Fn(usize) -> bool) {
    let mut run: Vec<(usize, char)> = Vec::new();
    let flush = |run: &mut Vec<(usize, char)>, keys: &mut Vec<Key>| {
        match run.len() {
            0 => {}
            1 => keys.push(Key {
                hash: hash(b"c", &run[0].1.to_string()),
                weight: W_CJK_SINGLE,
                pos: run[0].0,
                matchable: false,
                novel: W_CJK_SINGLE,
            }),
            _ => {
                for w in run.windows(2) {
                    let mut buf = [0u8; 8];
                    let a = w[0].1.encode_utf8(&mut buf[..4]).len();
                    let b = w[1].1.encode_utf8(&mut buf[a..]).len();
                    let s = std::str::from_utf8(&buf[..a + b]).unwrap_or("");
                    keys.push(Key {
                        hash: hash(b"b", s),
                        weight: W_BIGRAM,
                        pos: w[0].0,
                        matchable: true,
                        novel: W_BIGRAM_NOVEL,
                    });
                }
            }
        }
        run.clear();
    };
    for (off, c) in norm[t.start..t.end].char_indices() {
        let i = t.start + off;
        if skip(i) || is_cjk_stop(c) {
            flush(&mut run, keys);
        } else {
            run.push((i, c));
        }
    }
    flush(&mut run, keys);
}

const TOPIC_CACHE_SIZE: usize = 4096;

/// Keys are already hashes: pass them through.
#[derive(Default)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type TopicCache = HashMap<u64, (Box<str>, Topic), BuildHasherDefault<PassThrough>>;

thread_local! {
    static TOPIC_CACHE: RefCell<TopicCache> = RefCell::new(TopicCache::default());
}

/// FNV-1a over a kind tag and the key text.
fn hash(tag: &[u8], s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in tag.iter().chain(s.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(a: &str, b: &str) -> f32 {
        Topic::of_text(a).overlap(&Topic::of_text(b))
    }

    #[test]
    fn concepts_cross_languages() {
        assert!(ov("dark mode 那个", "设置页支持暗色模式") >= NAMES);
        assert!(ov("the migration one", "数据库迁移：users 表加 last_login_at") >= NAMES);
    }

    #[test]
    fn versions_and_identifiers_match_whole() {
        assert!(ov("bump to 2.3.0", "write release notes for v2.3") >= NAMES);
        assert!(ov("backfill owner_id", "migration: add owner_id to teams") >= NAMES);
        // An API version is not a release.
        assert!(ov("/api/v2 routes", "write release notes for v2.3") < 0.5);
    }

    #[test]
    fn generic_words_do_not_name_a_task() {
        assert!(ov("fix the page", "fix the settings page") < NAMES);
        assert_eq!(ov("rate limiting", "add dark mode to the settings page"), 0.0);
    }

    #[test]
    fn cjk_bigrams_match() {
        assert!(ov("接受邀请后偶发 403 的问题", "排查接受邀请后偶发 403") >= NAMES);
        assert!(ov("保存按钮没反应", "修复设置页按钮错位") >= NAMES);
    }
}
