//! Vocabulary classes: the words and phrases that carry intent, in English and Chinese.
//!
//! Rules reason about *classes* (a yes-word, a back-reference, a reviewer word), never about
//! sentences, so new phrasings built from known words classify the same way. All patterns (plus
//! the configured agent aliases) go into one Aho-Corasick automaton built once per
//! [`Classifier`](super::Classifier); a message is scanned once, with every overlapping match kept.
//!
//! Pattern syntax: English patterns must start and end on a word boundary; a trailing `*`
//! lifts the end boundary (`review*` also matches `reviewed`). CJK and emoji never need one.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use super::text::is_word_char;

/// A vocabulary class. At most 64, stored as bits of a [`Classes`] set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Class {
    /// Assent: ok, yes, go ahead, 同意.
    Yes,
    /// Refusal: no, nope, don't, 不行, 拒绝.
    No,
    /// Stop the current turn (also a refusal when an approval is pending): stop, 停下.
    Stop,
    /// Stop the current turn, never a mere "no": abort, kill it, 取消.
    Abort,
    /// Negates the word right after it: don't, not, 不用, 别.
    Negation,
    /// Keep the current work going: continue, keep going, 继续.
    Continue,
    /// Run the same thing again: retry, try again, 再试.
    Retry,
    /// Pronouns that may point back at the work: it, this, that, 这个.
    Pronoun,
    /// Words that only make sense about existing work: again, instead, still, same, 改成, 再.
    BackStrong,
    /// A question about progress or outcome that needs nothing else: status, done yet, 进度.
    StatusPhrase,
    /// Outcome words that ask for status inside a question: done, pass, work, 卡住.
    StatusPredicate,
    /// "About everything": everything, all tasks, 所有.
    StatusGlobal,
    /// Opens a yes/no question: is, did, any.
    QuestionLead,
    /// Asks the agent to think or explain (rule 7): why, explain, 为什么.
    Why,
    RoleReview,
    /// Weak reviewer words, used only when no other role word is present: look at, 看看.
    RoleLook,
    RoleTest,
    /// Strong editor words: fix, implement, take over, 接手.
    RoleEdit,
    ScopeAlways,
    ScopeOnce,
    NewSession,
    NewTaskMarker,
    /// Verbs that open a self-contained goal: fix, add, write, set up, 帮我, 修复.
    GoalVerb,
    /// Verbs that more often refine the current work: make, use, rename, bump, 改, 换.
    EditVerb,
    /// Asking someone to do something: can you, please, 帮忙.
    Request,
    /// Something is wrong: broken, fails, 挂了, 报错.
    Problem,
    /// Small talk that carries no goal: thanks, lol, 谢谢.
    Chatter,
    /// Words that may surround a yes/no without changing it: please, then, 吧.
    Filler,
    /// Precedes an agent who is asked to act: use, have, let, ask, 让, 叫.
    ActorCue,
    /// Follows an agent who is asked to act: can, should, to, 帮忙, 来.
    ActorNext,
    /// Follows an agent used as a noun: is, 's, keeps, output, 太, 的.
    NounCue,
    /// The work itself: the fix, the diff, the changes, 改动.
    WorkNoun,
    /// Weak connectives that do not make a follow-up by themselves: also, and then, 另外.
    Connective,
    /// Asking for permission: a negated one widens an approval ("don't ask me again").
    AskVerb,
    /// A configured agent alias.
    Agent,
}

/// A set of classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Classes(u64);

impl Classes {
    pub fn has(self, c: Class) -> bool {
        self.0 & (1 << c as u8) != 0
    }
    fn add(&mut self, c: Class) {
        self.0 |= 1 << c as u8;
    }
    /// The raw bit set (bit `c as u8` for each class).
    pub fn bits(self) -> u64 {
        self.0
    }
}

/// One vocabulary match in the normalized text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub start: usize,
    pub end: usize,
    pub classes: Classes,
    /// Index into [`Lexicon::agents`] for an [`Class::Agent`] hit.
    pub agent: u16,
    /// A negation word governs this hit (set once per message by `Msg::new`).
    pub negated: bool,
}

impl Hit {
    pub fn is(&self, c: Class) -> bool {
        self.classes.has(c)
    }
}

#[derive(Debug, Clone)]
struct PatInfo {
    classes: Classes,
    agent: u16,
    /// Needs a word boundary before / after.
    bound_start: bool,
    bound_end: bool,
    /// `review*`: may run on into letters, but not into an identifier (`audit_log`).
    open_end: bool,
}

/// The compiled vocabulary.
#[derive(Debug, Clone)]
pub(crate) struct Lexicon {
    ac: AhoCorasick,
    info: Vec<PatInfo>,
    /// Agent names, indexed by [`Hit::agent`].
    pub agents: Vec<String>,
    /// Lower-cased single-word aliases (for `/alias` commands) → agent index.
    pub command_aliases: HashMap<String, u16>,
}

/// The contract's built-in aliases.
pub(crate) const BUILTIN_ALIASES: &[(&str, &str)] = &[
    ("cc", "claude"),
    ("claude code", "claude"),
    ("claude-code", "claude"),
    ("claude", "claude"),
    ("cx", "codex"),
    ("codex", "codex"),
    ("gemini", "gemini"),
];

use Class::*;

#[rustfmt::skip]
const VOCAB: &[(Class, &[&str])] = &[
    (Yes, &[
        "yes", "y", "yep", "yeah", "yea", "yup", "ya", "ok", "okay", "okey", "k", "kk", "sure",
        "sure thing", "no problem", "go", "go ahead", "go for it", "do it", "proceed", "approve",
        "approved", "allow", "allowed", "accept", "lgtm", "fine", "alright", "all right",
        "sounds good", "looks good", "ship it", "run it", "yes please", "please do", "confirm",
        "confirmed", "of course", "absolutely", "👍", "👍🏻", "👍🏼", "👍🏽", "✅", "👌", "🆗", "✔", "✔️",
        "🙆", "好", "好的", "好吧", "好滴", "行", "行吧", "可以", "可", "同意", "批准", "允许", "嗯", "嗯嗯", "对", "对的",
        "是的", "没问题", "确认", "跑吧", "执行", "执行吧", "去吧", "搞吧", "冲", "准了", "通过", "ok的", "可以的", "来吧", "放行",
        "批了", "批吧", "可以批", "准",
    ]),
    (No, &[
        "no", "nope", "nah", "n", "don't", "dont", "do not", "deny", "denied", "reject", "rejected",
        "refuse", "decline", "not that", "not now", "not yet", "never", "hold off", "👎", "👎🏻", "❌",
        "🚫", "✋", "🙅", "不", "不行", "不要", "不用", "不可以", "不同意", "别", "拒绝", "否", "算了", "先别", "不允许", "不准",
        "驳回", "不批", "别跑", "不能",
    ]),
    (Stop, &[
        "stop", "stop it", "halt", "pause", "hold it", "freeze", "停", "停下", "停止", "停一下", "停掉", "先停",
        "暂停", "停下来",
    ]),
    (Abort, &[
        "abort", "kill", "kill it", "cancel", "cancel it", "terminate", "取消", "终止", "中止", "杀掉",
        "打断", "别跑了", "不要跑了", "先别跑了", "别再跑了", "不跑了",
        "forget it", "forget about it", "drop it", "scrap it", "give up on it", "不做了", "不搞了", "别搞了", "不弄了", "别弄了", "先不弄了", "不干了", "别做了", "不用做了", "不用弄了",
        "no longer needed", "not needed anymore", "drop this one", "取消吧", "取消掉", "cancel 掉", "用不上了", "不需要了", "先别搞", "别折腾了", "不用了，停",
    ]),
    (Negation, &[
        "don't", "dont", "do not", "doesn't", "not", "no need to", "no need", "never", "不要", "别",
        "不用", "不必", "无需", "甭", "不需要", "没必要", "不", "不想", "先别",
    ]),
    (Continue, &[
        "continue", "keep going", "go on", "carry on", "resume", "keep at it", "keep working",
        "proceed", "finish it", "finish up", "继续", "接着", "接着做", "继续跑", "继续吧", "跑完",
    ]),
    (Retry, &[
        "retry", "try again", "rerun", "re-run", "run it again", "one more time", "once more",
        "give it another", "another try", "another go", "重试", "再试", "再跑", "重跑", "重新跑", "再来", "再试一次",
        "再跑一次",
    ]),
    (Pronoun, &[
        "it", "it's", "its", "this", "that", "these", "those", "them", "here", "this one",
        "that one", "这个", "那个", "这", "它", "这些", "那些", "上面", "这里", "那里", "这块",
    ]),
    (BackStrong, &[
        "again", "instead", "same", "the same", "still", "as well", "either", "anymore",
        "the last change", "last change", "previous", "your change", "your changes", "what you did",
        "what it did", "revert", "undo", "redo", "roll back", "didnt work", "didn't work",
        "did not work", "doesn't work", "didnt", "再", "又", "还是", "改成", "改为", "换成", "换个", "刚才", "刚刚",
        "之前", "上次", "同样", "其余", "剩下的", "撤销", "回退", "还原", "依然", "仍然", "也还",
    ]),
    (StatusPhrase, &[
        "status", "progress", "any update", "any updates", "any news", "any luck", "any progress",
        "how's it going", "how is it going", "hows it going", "how's it looking", "how's it coming",
        "how is it coming", "coming along", "how's everything", "how is everything",
        "how are things", "how far", "where are we", "where are we at", "where is it at",
        "where's it at", "what happened", "what's happening", "what is happening",
        "what's going on", "what is going on", "what's running", "what is running", "whats running",
        "what's it doing", "what is it doing", "what's it waiting", "what is it waiting",
        "waiting on", "done yet", "finished yet", "ready yet", "eta", "still running",
        "is it stuck", "update on", "news on", "how did it go", "what's left", "what is left",
        "whats left", "how much is left", "how much longer", "how long will", "how close", "还剩",
        "还差多少", "还要多久", "多久能好", "where did we land", "where do we stand", "where does it stand",
        "where are things", "how are we doing", "what's blocking", "what is blocking", "进展如何",
        "进度如何", "情况如何", "any blockers", "blockers", "blocked on", "还在跑", "在跑吗", "还活着", "活着吗", "绿了没",
        "绿了吗", "green yet", "is it alive", "still alive", "跑了吗", "跑了没", "合了吗", "合并了吗", "上线了吗",
        "部署了吗", "how'd it go", "what's the holdup", "进度", "进展", "状态", "怎么样", "怎么样了", "如何了", "咋样",
        "搞完没", "搞完了吗", "搞定没", "搞定了吗", "完成了吗", "完成没", "做完了吗", "做完没", "好了吗", "好了没", "过了吗", "过了没",
        "过没过", "跑完了吗", "跑完没", "成功了吗", "成功没", "修好了吗", "修好没", "没动静", "什么情况", "啥情况", "到哪了", "到哪一步",
        "结果呢", "结果如何", "有结果吗", "有进展吗", "在干嘛", "在做什么", "弄完没", "弄好了吗", "完事了吗", "完了吗", "完了没", "怎样了",
        "咋样了", "进行到", "卡住了吗", "卡住了",
        "busy with", "working on", "在忙啥", "忙啥", "忙什么", "rundown", "overview", "in flight", "came of it", "what came of", "到第几", "第几个", "how's it goin", "hows it goin", "how is it goin", "没做完",
        "卡在哪", "还没好", "怎么还没", "到哪个", "列一下现在", "现在的任务", "what came out of",
        "在等什么", "在等啥", "what's up with", "whats up with", "where's this at", "where is this at", "where's that at", "how did the", "总览", "总体进度", "汇报一下", "汇报下", "失败了吗", "失败了没", "挂了吗", "挂了没", "是不是挂了", "是不是失败", "做到哪", "弄到哪", "跑到哪",
    ]),
    (StatusPredicate, &[
        "done", "finished", "finish", "complete", "completed", "pass", "passed", "passing", "work",
        "worked", "working", "succeed", "succeeded", "green", "merged", "deployed", "ready",
        "fixed", "running", "stuck", "find", "found", "live", "blocking", "out yet", "hung",
        "landed", "go through", "went through", "failing", "failed", "broken", "run", "ran",
        "going", "doing", "up to", "shipped", "released", "blocked", "alive", "卡住", "过了", "好了",
        "完了", "成功", "挂了", "跑完", "在跑", "绿了", "活着",
        "successful", "land", "red", "still red", "成功了", "跑通",
    ]),
    (StatusGlobal, &[
        "everything", "all tasks", "all the tasks", "all of them", "all my tasks", "what's running",
        "what is running", "whats running", "anything running", "overall", "each task",
        "every task", "all jobs", "all the jobs", "all of it", "my tasks", "所有", "全部", "都什么", "各个",
        "每个任务", "哪些任务", "大家", "整体",
        "everyone", "you all", "all of you", "in flight", "rundown", "overview", "every task", "all tasks", "还有啥", "哪些还没", "都在忙",
        "总览", "总体", "现在都", "都在跑",
    ]),
    (QuestionLead, &[
        "is", "are", "did", "does", "was", "were", "any", "anything", "is it", "is the", "did it",
        "did the", "has it", "has the", "have you", "have they", "are we", "are they", "how's",
        "how is", "how are", "hows", "what's", "what is", "whats",
    ]),
    (Why, &[
        "why", "how come", "explain", "what does", "what do", "what's causing", "what is causing",
        "what caused", "mean", "meaning", "root cause", "how does", "how do", "what's wrong",
        "what is wrong", "walk me through", "为什么", "为啥", "怎么回事", "解释", "什么意思", "啥意思", "原因", "咋回事",
        "怎么会", "为何",
    ]),
    (RoleReview, &[
        "review*", "code review", "check", "checks", "check it", "check over", "double check",
        "double-check", "look over", "looks over", "audit*", "proofread", "read through", "go over",
        "sanity check", "sanity-check", "verify", "inspect", "second opinion",
        "second pair of eyes", "审查", "审核", "审阅", "检查", "把关", "过一遍", "复查", "核对", "评审",
        "审一下", "审下", "审审", "审一审", "帮审", "把把关", "看一眼",
        "look it over", "look this over", "look that over", "once-over", "once over", "校对", "审计", "过目", "second look", "another look", "glance over",
        "过一下", "复核", "审一遍", "再审", "审查一下", "瞅一眼", "瞅瞅", "安全性", "安全隐患",
    ]),
    (RoleLook, &[
        "look at", "take a look", "have a look", "look into", "看看", "看一下", "看下", "瞧瞧", "看一眼",
    ]),
    (RoleTest, &[
        "test", "tests", "testing", "tester", "qa", "unit test", "unit tests", "e2e test",
        "e2e tests", "write tests", "write a test", "add tests", "add a test", "run the tests",
        "run tests", "run the test", "test coverage", "coverage", "测试", "单测", "跑测试", "用例", "测一下",
        "测测", "回归", "写测试", "补测试", "测一测",
        "e2e suite", "test suite", "smoke test", "smoke tests", "跑一遍测试", "跑一下测试", "跑下测试", "测试跑一遍", "regression tests",
        "写点单测", "补单测", "跑一下 e2e", "跑 e2e", "as tester", "qa it",
        "测一遍", "端到端", "测一轮", "run through",
    ]),
    (RoleEdit, &[
        "fix", "fix it", "implement", "take over", "take a stab", "take a crack", "stab at",
        "its own version", "own version", "own take", "try", "attempt", "rewrite", "redo", "handle",
        "patch", "refactor", "finish", "修", "修复", "实现", "接手", "重写", "来做", "处理", "修一下", "改一下", "接过去",
        "重做",
        "来一版", "自己的版本", "自己的一版", "alternative implementation", "own implementation", "give it a go", "换 claude 来",
    ]),
    (ScopeAlways, &[
        "always", "approve all", "allow all", "accept all", "all of them", "don't ask again",
        "dont ask again", "do not ask again", "don't ask me again", "dont ask me again",
        "stop asking", "never ask", "no need to ask", "from now on", "every time", "auto-approve",
        "auto approve", "whitelist", "allowlist", "for this session", "for the rest of",
        "don't ask for", "yes to all", "以后都", "以后不用", "不用再问", "别再问", "不要再问", "总是", "始终", "都同意",
        "全部同意", "一律", "永远", "每次都", "全部允许", "以后直接", "以后这类", "都允许", "全都", "不必再问", "不用问", "都不用问",
        "别问了", "不要问了", "无需再问", "不用每次问", "以后都不用",
        "以后", "自动批准", "自动放行", "不用再确认", "不用问我", "别问我", "无需确认", "不用确认", "without asking", "auto-allow",
        "永久", "永久允许", "永久放行", "以后别问", "以后不用问", "不用再问了", "随便跑",
    ]),
    (ScopeOnce, &[
        "just this once", "this once", "only once", "this time", "just once", "once", "one time",
        "just this one", "next time ask", "ask me next time", "ask next time", "这次", "这一次", "仅此一次",
        "下次还是", "下次先问", "下次还要问", "就这一次", "只这一次", "下次再问", "下不为例",
    ]),
    (NewSession, &[
        "new session", "fresh session", "clean session", "new context", "fresh context",
        "clean context", "clean slate", "clear context", "clear the context", "clear your context",
        "wipe the context", "wipe context", "wipe the session", "reset the context",
        "reset context", "reset the session", "reset session", "start over", "start fresh",
        "start afresh", "restart the session", "new conversation", "fresh start",
        "forget everything", "forget the context", "forget the previous", "new thread",
        "fresh thread", "clean context window", "blank slate", "start from scratch",
        "empty context", "new chat", "fresh chat", "clean chat", "新会话", "新的会话", "开个新会话", "新开会话",
        "新开一个会话", "清空上下文", "清除上下文", "清空会话", "重置上下文", "重置会话", "重新开始", "从头开始", "从头来", "上下文太乱", "忘掉之前",
        "新对话", "新开个对话", "清掉上下文", "清一下上下文", "新开一个对话",
        "新 session", "新的 session", "新开个 session", "新开 session", "重开 session", "重开会话", "干净会话", "干净的会话", "上下文清一下", "清一下上下文", "reset its context", "clear its context", "wipe its context", "fresh context window", "换个新会话", "开新会话",
        "重置一下会话", "全新的上下文", "全新上下文", "清掉重开", "会话清空", "清空会话", "nuke the session", "nuke the context", "start clean", "重开会话", "开个新会话",
        "上下文清掉", "干净的上下文", "干净上下文", "清上下文", "干净的 session", "干净 session", "clean session", "wipe the slate",
        "context 重开", "context 清干净", "清干净重来", "重开一个 session", "context 太乱", "reset 一下 context", "clear 一下 context", "清空 context", "上下文清空", "干净的 context 重开", "用干净的 context",
    ]),
    (NewTaskMarker, &[
        "new task", "new one", "a new task", "another task", "separate task", "different task",
        "new job", "new ticket", "unrelated", "new thing", "another thing", "different thing",
        "something else", "separate thing", "new request", "新任务", "新的任务", "另一个任务", "另外一个任务",
        "新开个任务", "新开一个任务", "单独开", "新需求", "另一件事", "另一个事", "新活", "开个任务", "新建任务", "fresh task",
        "new issue", "a new one", "新开一个", "再开一个任务", "另开一个",
    ]),
    (GoalVerb, &[
        "fix", "add", "write", "create", "build", "implement", "set up", "setup", "upgrade",
        "refactor", "investigate", "debug", "look into", "dig into", "take a look", "have a look",
        "look at", "check out", "draft", "generate", "port", "rewrite", "support", "configure",
        "deploy", "clean up", "cleanup", "document", "translate", "optimize", "speed up", "improve",
        "integrate", "design", "research", "find out", "figure out", "prepare", "introduce",
        "wire up", "hook up", "profile", "migrate", "trace", "diagnose", "troubleshoot", "automate",
        "scaffold", "prototype", "spike", "benchmark", "audit", "review", "look", "帮我", "修复", "修一下",
        "修", "写", "加", "添加", "增加", "新增", "实现", "做个", "做一个", "搞个", "排查", "查一下", "查查", "查", "看看",
        "看下", "看一下", "整理", "重构", "升级", "支持", "优化", "部署", "接入", "调研", "研究", "迁移", "弄个", "定位", "分析",
        "生成", "清理", "we need", "i need", "we want", "i want", "we should have", "there should be",
        "need a", "need an", "需要一个", "想要", "想加",
    ]),
    (EditVerb, &[
        "make", "update", "remove", "delete", "drop", "rename", "move", "split", "bump", "replace",
        "convert", "enable", "disable", "change", "use", "switch", "set", "keep", "include",
        "handle", "tweak", "adjust", "pin", "mention", "去掉", "删除", "删掉", "改", "换", "调", "做", "搞",
        "弄", "补", "出", "配置", "用", "加上", "去除",
    ]),
    (Request, &[
        "can you", "could you", "would you", "can u", "pls", "please", "plz", "i need", "we need",
        "i want", "we want", "let's", "lets", "someone", "anyone", "somebody", "help me",
        "need you to", "can someone", "could someone", "帮我", "帮忙", "麻烦", "请", "能不能", "能否", "可以帮",
        "给我", "需要", "帮", "搞一下",
    ]),
    (Problem, &[
        "broken", "breaks", "broke", "fails", "failing", "failed", "fail", "doesn't work",
        "does not work", "not working", "isn't working", "crash*", "error", "errors", "is red",
        "red", "times out", "timing out", "timed out", "slow", "invisible", "missing", "wrong",
        "bug", "bugs", "hangs", "hanging", "leak*", "regress*", "flaky", "挂了", "挂", "报错", "没反应",
        "不生效", "超时", "崩溃", "崩了", "失败", "不对", "有问题", "出错", "错位", "异常", "卡", "慢", "没用", "不工作", "不显示",
        "打不开",
    ]),
    (Chatter, &[
        "thanks", "thank you", "thx", "ty", "cheers", "never mind", "nevermind", "nvm", "hi",
        "hello", "hey", "nice", "great", "no idea", "no clue", "no rush", "no worries", "cool",
        "awesome", "nice work", "good job", "lol", "haha", "brb", "谢谢", "多谢", "辛苦了", "好棒", "厉害",
        "哈哈", "你好", "收到",
    ]),
    (Filler, &[
        "please", "pls", "plz", "now", "then", "just", "so", "um", "uh", "hey", "btw", "right",
        "actually", "and", "yeah", "go", "it", "that", "ahead", "never mind", "nevermind", "nvm",
        "这么", "那么", "这样", "那样", "这边", "那边", "hold on", "hang on", "wait", "等等", "等一下", "well",
        "hmm", "吧", "了", "啊", "呀", "嘛", "哈", "呗", "先", "呢", "哦", "喔", "那就", "那", "就", "吧吧",
    ]),
    (ActorCue, &[
        "use", "using", "have", "let", "get", "ask", "tell", "make", "switch to", "switch over to",
        "hand it to", "hand it over to", "hand this to", "hand off to", "give it to",
        "give this to", "assign it to", "assign to", "pass it to", "bring in", "loop in", "with",
        "via", "try", "can", "could", "would", "should", "will", "ping", "opinion from",
        "review from", "feedback from", "input from", "help from", "a look from", "eyes from",
        "check from", "让", "叫", "用", "请", "换", "换成", "换到", "切到", "切换到", "交给", "给", "找", "派", "使用",
        "调用", "喊",
    ]),
    (ActorNext, &[
        "can", "could", "should", "would", "will", "to", "pls", "please", "plz", "take", "try",
        "do", "write", "review", "check", "fix", "implement", "look", "test", "run", "qa", "audit",
        "draft", "help", "add", "handle", "帮忙", "帮我", "帮", "来", "接手", "也", "再", "去", "试试", "写", "跑",
        "看", "审", "修", "改", "测", "做", "查", "review",
    ]),
    (NounCue, &[
        "is", "was", "are", "'s", "keeps", "kept", "seems", "said", "says", "did", "does", "has",
        "had", "got", "proposed", "suggested", "wrote", "made", "output", "result", "results",
        "thinks", "thought", "went", "broke", "failed", "messed", "version", "session", "changes",
        "diff", "patch", "太", "的", "说", "写的", "做的", "改的", "弄的", "搞的", "给的", "提的", "一直", "老是", "总是",
        "卡", "又", "输出", "结果", "方案", "那边", "好像",
    ]),
    (WorkNoun, &[
        "the fix", "the diff", "the change", "the changes", "the patch", "the pr", "this pr",
        "the code", "the output", "the result", "the results", "the work", "the implementation",
        "the branch", "the commit", "your fix", "the approach", "the solution", "the proposal",
        "this fix", "that fix", "this change", "the draft", "the plan", "a stab", "the same",
        "the rest", "the rest of it", "the remaining", "这个修复", "改动", "这次改动", "方案", "代码", "这版",
        "这个版本", "这个 pr", "这个pr", "这个改动",
    ]),
    (AskVerb, &["ask", "asking", "prompt me", "check with me", "问", "问我", "请示", "确认"]),
    (Connective, &[
        "also", "and then", "then", "now", "plus", "btw", "by the way", "and also", "另外", "还有",
        "顺便", "然后", "再说",
        "next up", "接下来", "顺手", "另外还有",
    ]),
];

impl Lexicon {
    /// Builds the automaton from the built-in vocabulary, the contract's aliases and `extra`
    /// (alias → agent) pairs from configuration.
    pub fn new(extra: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut agents: Vec<String> = Vec::new();
        let mut aliases: Vec<(String, u16)> = Vec::new();
        let agent_index = |name: &str, agents: &mut Vec<String>| -> u16 {
            let name = name.trim().to_lowercase();
            match agents.iter().position(|a| *a == name) {
                Some(i) => i as u16,
                None => {
                    agents.push(name);
                    (agents.len() - 1) as u16
                }
            }
        };
        let builtin = BUILTIN_ALIASES.iter().map(|(a, n)| (a.to_string(), n.to_string()));
        for (alias, name) in builtin.chain(extra) {
            let alias = super::text::normalize(alias.trim());
            if alias.is_empty() || name.trim().is_empty() {
                continue;
            }
            let i = agent_index(&name, &mut agents);
            // The agent's own name is always an alias of itself.
            let own = agents[i as usize].clone();
            aliases.push((alias, i));
            aliases.push((own, i));
        }

        // Merge duplicates so that one pattern carries every class it belongs to.
        let mut by_pat: HashMap<String, (Classes, u16, bool)> = HashMap::new();
        for (class, words) in VOCAB {
            for w in *words {
                let (pat, open_end) = match w.strip_suffix('*') {
                    Some(p) => (p, true),
                    None => (*w, false),
                };
                let e = by_pat.entry(pat.to_owned()).or_default();
                e.0.add(*class);
                e.2 |= open_end;
            }
        }
        let mut command_aliases = HashMap::new();
        for (alias, i) in &aliases {
            let e = by_pat.entry(alias.clone()).or_default();
            e.0.add(Agent);
            e.1 = *i;
            if alias.chars().all(|c| is_word_char(c) || c == '-') {
                command_aliases.insert(alias.replace('-', "_"), *i);
                command_aliases.insert(alias.clone(), *i);
            }
        }

        let mut pats = Vec::with_capacity(by_pat.len());
        let mut info = Vec::with_capacity(by_pat.len());
        for (pat, (classes, agent, open_end)) in by_pat {
            let first = pat.chars().next().unwrap_or(' ');
            let last = pat.chars().next_back().unwrap_or(' ');
            info.push(PatInfo {
                classes,
                agent,
                bound_start: is_word_char(first),
                bound_end: !open_end && is_word_char(last),
                open_end,
            });
            pats.push(pat);
        }
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            // A contiguous NFA: measured faster than a DFA here (smaller, stays in cache).
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(&pats)
            .expect("vocabulary patterns compile");
        Self { ac, info, agents, command_aliases }
    }

    /// Every vocabulary match in `s` (normalized), in order of start, longest first.
    pub fn scan(&self, s: &str) -> Vec<Hit> {
        let mut hits = Vec::with_capacity(16);
        for m in self.ac.find_overlapping_iter(s) {
            let info = &self.info[m.pattern().as_usize()];
            if info.bound_start && m.start() > 0 && word_byte_before(s, m.start()) {
                continue;
            }
            if info.bound_end && word_continues_at(s, m.end()) {
                continue;
            }
            if info.open_end && runs_into_identifier(s, m.end()) {
                continue;
            }
            hits.push(Hit { start: m.start(), end: m.end(), classes: info.classes, agent: info.agent, negated: false });
        }
        hits.sort_unstable_by(|x, y| x.start.cmp(&y.start).then(y.end.cmp(&x.end)));
        hits
    }
}

fn word_byte_before(s: &str, i: usize) -> bool {
    s[..i].chars().next_back().is_some_and(is_word_char)
}

/// The word that continues at `i` contains a digit, `_` or `.`: an identifier, not an inflection.
fn runs_into_identifier(s: &str, i: usize) -> bool {
    s[i..].chars().take_while(|c| is_word_char(*c) || *c == '.').any(|c| c == '_' || c == '.' || c.is_ascii_digit())
}

/// A word goes on at `i`: a word character, or an apostrophe inside a word (`don't`, `it'll`);
/// a possessive or `is` (`codex's`, `it's`) ends the word before it.
fn word_continues_at(s: &str, i: usize) -> bool {
    let rest = &s[i..];
    let mut it = rest.chars();
    match it.next() {
        Some('\'') => {
            let word: String = it.take_while(|c| c.is_ascii_alphanumeric()).collect();
            !word.is_empty() && word != "s"
        }
        Some(c) => is_word_char(c),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes_at(lex: &Lexicon, s: &str, word: &str) -> Vec<Hit> {
        let i = s.find(word).unwrap();
        lex.scan(s).into_iter().filter(|h| h.start == i && h.end == i + word.len()).collect()
    }

    #[test]
    fn english_patterns_respect_word_boundaries() {
        let lex = Lexicon::new([]);
        // "it" inside "edit" is no pronoun; "k" inside "ok" is no yes-word.
        let hits = lex.scan("edit ok");
        assert!(!hits.iter().any(|h| h.is(Pronoun)));
        assert_eq!(hits.iter().filter(|h| h.is(Yes)).count(), 1);
        // review* is open-ended.
        assert!(lex.scan("reviewed").iter().any(|h| h.is(RoleReview)));
    }

    #[test]
    fn one_pattern_many_classes() {
        let lex = Lexicon::new([]);
        let h = classes_at(&lex, "don't", "don't");
        assert!(h.iter().any(|h| h.is(No) && h.is(Negation)));
    }

    #[test]
    fn configured_aliases_join_the_builtins() {
        let lex = Lexicon::new([("gem".to_string(), "gemini".to_string())]);
        let hits = lex.scan("let gem review it");
        let a = hits.iter().find(|h| h.is(Agent)).unwrap();
        assert_eq!(lex.agents[a.agent as usize], "gemini");
        let hits = lex.scan("ask claude code to check");
        assert!(hits.iter().any(|h| h.is(Agent) && h.end - h.start == "claude code".len()));
    }
}
