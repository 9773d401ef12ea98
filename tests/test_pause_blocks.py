"""A worker's hard-pause block is read however a language model decorates it (markdown, fences, quotes,
full-width punctuation, English or Chinese), a header whose fields cannot be read still pauses, and chatter
that only mentions hard pauses does not."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foreman_tui.engine.pause_blocks import parse_worker_block

from .test_pauses import CHINESE_BLOCK, ENGLISH_BLOCK

GIVEN = "given_node"
UPSTREAM = "#3 upstream post condition must change"
UPSTREAM_ZH = "#3 需要修改上游节点的 post 条件"
THREE_TIMES = "#1 same L1 check failed 3 times"
DEPARTS = "#2 implementation departs from the spec"


class Case(NamedTuple):
    text: str
    trigger: str
    node: str
    problem: str
    tried: str
    options: list[tuple[str, str]]


EN_OPTIONS = [
    ("A", "change 01's post condition to lists"),
    ("B", "keep tuples and convert here"),
    ("C", "your instruction"),
]
ZH_OPTIONS = [("A", "修改 01 的 post 条件，改为 list"), ("B", "保留 tuple，在本节点转换"), ("C", "用户指示")]

CORPUS: dict[str, Case] = {
    "plain English, as SPEC §6 writes it": Case(
        ENGLISH_BLOCK,
        UPSTREAM,
        "02_vector_math",
        "mean() must return a list, but 01's checkpoint stores tuples",
        "converting in place; wrapping the result",
        EN_OPTIONS,
    ),
    "plain Chinese, as the seed writes it": Case(
        CHINESE_BLOCK,
        "#2 实现思路与 how 本质偏离",
        "01_load_points",
        "CSV 有分号分隔的行，how 只说逗号",
        "按逗号解析，失败",
        [("A", "同时支持分号"), ("B", "拒绝分号行并报错"), ("C", "用户指示")],
    ),
    "Claude: bold header with the colon inside, bold field names": Case(
        """I've run the test three times and it keeps failing on the same assertion.

**HARD PAUSE:** [#1 same L1 check failed 3 times]
**Node:** 02_vector_math
**Problem:** `test_squared_distance` expects 25.0 but `dist2` returns 7.0
**Tried:** rewrote `dist2` twice; checked the fixture
**Options:** A) retry with a hint / B) accept the dispute / C) your instruction

I'll stop here until you decide.""",
        THREE_TIMES,
        "02_vector_math",
        "`test_squared_distance` expects 25.0 but `dist2` returns 7.0",
        "rewrote `dist2` twice; checked the fixture",
        [("A", "retry with a hint"), ("B", "accept the dispute"), ("C", "your instruction")],
    ),
    "bold header with the colon outside, #2: without brackets": Case(
        """**HARD PAUSE**: #2: implementation departs from the spec
**Node**: 03_assign
**Problem**: the how asks for Lloyd's algorithm; the code I wrote is k-means++ seeding only
**Tried**: n/a
**Options**: A) redo it as Lloyd's / B) accept as is / C) your instruction""",
        DEPARTS,
        "03_assign",
        "the how asks for Lloyd's algorithm; the code I wrote is k-means++ seeding only",
        "n/a",
        [("A", "redo it as Lloyd's"), ("B", "accept as is"), ("C", "your instruction")],
    ),
    "GPT: heading, Trigger field, bullets, options one per line": Case(
        """## HARD PAUSE

- **Trigger:** #3 — upstream post condition must change
- **Node:** `02_vector_math`
- **Problem:** mean() must return a list, but 01's checkpoint stores tuples
- **Tried:** converting in place; wrapping the result
- **Options:**
  - A) change 01's post condition to lists
  - B) keep tuples and convert here
  - C) your instruction

Let me know how you'd like to proceed.""",
        UPSTREAM,
        "02_vector_math",
        "mean() must return a list, but 01's checkpoint stores tuples",
        "converting in place; wrapping the result",
        EN_OPTIONS,
    ),
    "Chinese heading, trigger bold on the next line": Case(
        """### 硬暂停
**[#1 L1 连续失败 3 次]**

**当前节点**：02_vector_math
**问题描述**：test_squared_distance 连续 3 次失败
**已尝试的方案**：重写 dist2；核对测试数据
**建议选项**：A) 带提示重试 / B) 接受争议 / C) 用户指示""",
        "#1 L1 连续失败 3 次",
        "02_vector_math",
        "test_squared_distance 连续 3 次失败",
        "重写 dist2；核对测试数据",
        [("A", "带提示重试"), ("B", "接受争议"), ("C", "用户指示")],
    ),
    "emoji, full-width brackets and option keys": Case(
        """⚠️ 硬暂停：【#3 需要修改上游节点的 post 条件】
当前节点：02_vector_math
问题描述：mean() 需要返回 list，但 01 的 checkpoint 存的是 tuple
已尝试的方案：原地转换；包装返回值
建议选项：A）修改 01 的 post 条件，改为 list ／ B）保留 tuple，在本节点转换 ／ C）用户指示""",
        UPSTREAM_ZH,
        "02_vector_math",
        "mean() 需要返回 list，但 01 的 checkpoint 存的是 tuple",
        "原地转换；包装返回值",
        ZH_OPTIONS,
    ),
    "stop-sign emoji, number then a dot": Case(
        """🛑 HARD PAUSE: [3. upstream post condition must change]
Node: 02_vector_math
Problem: mean() must return a list, but 01's checkpoint stores tuples
Tried: converting in place; wrapping the result
Options: A) change 01's post condition to lists / B) keep tuples and convert here / C) your instruction""",
        UPSTREAM,
        "02_vector_math",
        "mean() must return a list, but 01's checkpoint stores tuples",
        "converting in place; wrapping the result",
        EN_OPTIONS,
    ),
    "the whole block quoted": Case(
        """The check cannot pass under the current contract:

> **HARD PAUSE:** [#3 upstream post condition must change]
> **Node:** 02_vector_math
> **Problem:** mean() must return a list, but 01's checkpoint stores tuples
> **Tried:** converting in place; wrapping the result
>
> **Options:**
> - A) change 01's post condition to lists
> - B) keep tuples and convert here
> - C) your instruction

Waiting for your call.""",
        UPSTREAM,
        "02_vector_math",
        "mean() must return a list, but 01's checkpoint stores tuples",
        "converting in place; wrapping the result",
        EN_OPTIONS,
    ),
    "in a plain code fence": Case(
        """Printing the block as required:

```
HARD PAUSE: [#2 implementation departs from the spec]
Node: 04_update_centroids
Problem: the how says median, the checkpoint expects mean
Tried: both; only mean matches 03's output
Options: A) follow the how (median) / B) keep mean / C) your instruction
```
""",
        DEPARTS,
        "04_update_centroids",
        "the how says median, the checkpoint expects mean",
        "both; only mean matches 03's output",
        [("A", "follow the how (median)"), ("B", "keep mean"), ("C", "your instruction")],
    ),
    "in a ```text fence, Chinese": Case(
        """```text
硬暂停：[#3 需要修改上游节点的 post 条件]
当前节点：02_vector_math
问题描述：mean() 需要返回 list，但 01 的 checkpoint 存的是 tuple
已尝试的方案：原地转换；包装返回值
建议选项：A) 修改 01 的 post 条件，改为 list / B) 保留 tuple，在本节点转换 / C) 用户指示
```
等待用户回复。""",
        UPSTREAM_ZH,
        "02_vector_math",
        "mean() 需要返回 list，但 01 的 checkpoint 存的是 tuple",
        "原地转换；包装返回值",
        ZH_OPTIONS,
    ),
    "in a ~~~ fence under a heading": Case(
        """## HARD PAUSE
~~~
Trigger: #1
Node: 05_column_check
Problem: test_reduced_cost fails: -0.5 != 0.0
Tried: three fixes of the pricing sign
Options: A) retry with your hint / B) mark the check disputed / C) your instruction
~~~""",
        THREE_TIMES,
        "05_column_check",
        "test_reduced_cost fails: -0.5 != 0.0",
        "three fixes of the pricing sign",
        [("A", "retry with your hint"), ("B", "mark the check disputed"), ("C", "your instruction")],
    ),
    "underscore bold and italic field names": Case(
        """HARD PAUSE: [#2 implementation departs from the spec]
__Node__: 03_assign
*Problem*: the how assigns by cosine distance, the tests by euclidean
_Tried_: cosine (fails the tests)
*Options*: A) switch to euclidean / B) keep cosine and change the tests / C) your instruction""",
        DEPARTS,
        "03_assign",
        "the how assigns by cosine distance, the tests by euclidean",
        "cosine (fails the tests)",
        [("A", "switch to euclidean"), ("B", "keep cosine and change the tests"), ("C", "your instruction")],
    ),
    "numbered fields, (A) keys one per line": Case(
        """HARD PAUSE: [#3 upstream post condition must change]
1. Node: 02_vector_math
2. Problem: mean() must return a list, but 01's checkpoint stores tuples
3. Tried: converting in place; wrapping the result
4. Options:
   (A) change 01's post condition to lists
   (B) keep tuples and convert here
   (C) your instruction""",
        UPSTREAM,
        "02_vector_math",
        "mean() must return a list, but 01's checkpoint stores tuples",
        "converting in place; wrapping the result",
        EN_OPTIONS,
    ),
    "star bullets in Chinese, （A） keys one per line": Case(
        """硬暂停：[#3 需要修改上游节点的 post 条件]
* 当前节点：02_vector_math
* 问题描述：mean() 需要返回 list，但 01 的 checkpoint 存的是 tuple
* 已尝试的方案：原地转换；包装返回值
* 建议选项：
  （A）修改 01 的 post 条件，改为 list
  （B）保留 tuple，在本节点转换
  （C）用户指示""",
        UPSTREAM_ZH,
        "02_vector_math",
        "mean() 需要返回 list，但 01 的 checkpoint 存的是 tuple",
        "原地转换；包装返回值",
        ZH_OPTIONS,
    ),
    "A. keys one per line, and a dot inside a label": Case(
        """HARD PAUSE: [#1 same L1 check failed 3 times]
Node: 02_vector_math
Problem: test_mean keeps failing on empty input
Tried: returning 0; raising ValueError
Options:
A. Retry with plan B. Then re-run the checks
B. Accept the dispute
C. your instruction""",
        THREE_TIMES,
        "02_vector_math",
        "test_mean keeps failing on empty input",
        "returning 0; raising ValueError",
        [("A", "Retry with plan B. Then re-run the checks"), ("B", "Accept the dispute"), ("C", "your instruction")],
    ),
    "A: keys on one line": Case(
        """HARD PAUSE: [#2 implementation departs from the spec]
Node: 03_assign
Problem: ties are broken by the highest index, the how says lowest
Tried: nothing yet
Options: A: follow the how / B: keep the highest index / C: your instruction""",
        DEPARTS,
        "03_assign",
        "ties are broken by the highest index, the how says lowest",
        "nothing yet",
        [("A", "follow the how"), ("B", "keep the highest index"), ("C", "your instruction")],
    ),
    "number without #, Chinese": Case(
        """硬暂停：[3 需要修改上游节点的 post 条件]
当前节点：02_vector_math
问题描述：mean() 需要返回 list，但 01 的 checkpoint 存的是 tuple
已尝试的方案：原地转换；包装返回值
建议选项：A) 修改 01 的 post 条件，改为 list / B) 保留 tuple，在本节点转换 / C) 用户指示""",
        UPSTREAM_ZH,
        "02_vector_math",
        "mean() 需要返回 list，但 01 的 checkpoint 存的是 tuple",
        "原地转换；包装返回值",
        ZH_OPTIONS,
    ),
    "触发条件 n：name in brackets": Case(
        """硬暂停：[触发条件 3：需要修改上游节点的 post 条件]
当前节点：02_vector_math
问题描述：mean() 需要返回 list，但 01 的 checkpoint 存的是 tuple
已尝试的方案：原地转换；包装返回值
建议选项：A) 修改 01 的 post 条件，改为 list / B) 保留 tuple，在本节点转换 / C) 用户指示""",
        UPSTREAM_ZH,
        "02_vector_math",
        "mean() 需要返回 list，但 01 的 checkpoint 存的是 tuple",
        "原地转换；包装返回值",
        ZH_OPTIONS,
    ),
    "a bare name without a number": Case(
        """HARD PAUSE: [checkpoint format mismatch]
Node: 02_vector_math
Problem: 01 writes tuples, I need lists
Options: A) convert here / B) your instruction""",
        "checkpoint format mismatch",
        "02_vector_math",
        "01 writes tuples, I need lists",
        "",
        [("A", "convert here"), ("B", "your instruction")],
    ),
    "no trigger at all": Case(
        """**HARD PAUSE**
**Node:** 02_vector_math
**Problem:** the map's how contradicts the test data
**Options:** A) follow the how / B) follow the tests""",
        "worker asked",
        "02_vector_math",
        "the map's how contradicts the test data",
        "",
        [("A", "follow the how"), ("B", "follow the tests")],
    ),
    "a number alone takes the canonical name": Case(
        """HARD PAUSE: [#2]
Node: 03_assign
Problem: the how says k-medoids
Options: A) redo as k-medoids / B) keep k-means""",
        DEPARTS,
        "03_assign",
        "the how says k-medoids",
        "",
        [("A", "redo as k-medoids"), ("B", "keep k-means")],
    ),
    "values over several lines, a bulleted Tried": Case(
        """HARD PAUSE: [#1 same L1 check failed 3 times]
Node: 05_column_check
Problem: test_reduced_cost fails with -0.5 != 0.0;
the duals from 02 look shifted by one column.
Tried:
- flipping the sign of the duals
- re-reading 02's checkpoint
Options: A) retry with your hint / B) recheck after you fix 02 / C) your instruction""",
        THREE_TIMES,
        "05_column_check",
        "test_reduced_cost fails with -0.5 != 0.0;\nthe duals from 02 look shifted by one column.",
        "- flipping the sign of the duals\n- re-reading 02's checkpoint",
        [("A", "retry with your hint"), ("B", "recheck after you fix 02"), ("C", "your instruction")],
    ),
    "empty Options line, bold keys below": Case(
        """**HARD PAUSE:** [#2 implementation departs from the spec]

**Node:** 03_assign

**Problem:** the how wants a KD-tree, I used brute force

**Options:**

**A)** rewrite with a KD-tree
**B)** keep brute force (n is small)
**C)** *your instruction*""",
        DEPARTS,
        "03_assign",
        "the how wants a KD-tree, I used brute force",
        "",
        [("A", "rewrite with a KD-tree"), ("B", "keep brute force (n is small)"), ("C", "your instruction")],
    ),
    "the protocol quoted first, then the real block": Case(
        """My instructions say to print this when stuck:
HARD PAUSE: [#<n> <trigger name>]
Node: <node_id>
Problem: ...
Tried: ...
Options: A) ... / B) ... / C) your instruction

So here is mine:
HARD PAUSE: [#3 upstream post condition must change]
Node: 02_vector_math
Problem: mean() must return a list, but 01's checkpoint stores tuples
Tried: converting in place; wrapping the result
Options: A) change 01's post condition to lists / B) keep tuples and convert here / C) your instruction""",
        UPSTREAM,
        "02_vector_math",
        "mean() must return a list, but 01's checkpoint stores tuples",
        "converting in place; wrapping the result",
        EN_OPTIONS,
    ),
    "two blocks: the last one wins": Case(
        """HARD PAUSE: [#1 same L1 check failed 3 times]
Node: 02_vector_math
Problem: old problem
Options: A) retry / B) your instruction

Actually the real issue is upstream:
HARD PAUSE: [#3 upstream post condition must change]
Node: 02_vector_math
Problem: 01 stores tuples
Options: A) change 01 / B) your instruction""",
        UPSTREAM,
        "02_vector_math",
        "01 stores tuples",
        "",
        [("A", "change 01"), ("B", "your instruction")],
    ),
    "a node that is not a plain id: the given one": Case(
        """HARD PAUSE: [#2 implementation departs from the spec]
Node: 03_assign (the assignment step)
Problem: it assigns by index
Options: A) fix it / B) your instruction""",
        DEPARTS,
        GIVEN,
        "it assigns by index",
        "",
        [("A", "fix it"), ("B", "your instruction")],
    ),
    "short Chinese field names, Attempted-like 已尝试": Case(
        """硬暂停：#1：L1 连续失败 3 次
节点：`02_vector_math`
问题：test_mean 连续失败
已尝试：改写 mean
选项：A. 重试 / B. 接受争议 / C. 你的指示""",
        "#1 L1 连续失败 3 次",
        "02_vector_math",
        "test_mean 连续失败",
        "改写 mean",
        [("A", "重试"), ("B", "接受争议"), ("C", "你的指示")],
    ),
    "Attempted, free text written first, an 'or' before the last key": Case(
        """HARD PAUSE: [#2 implementation departs from the spec]
Node: 03_assign
Problem: the how wants ties to the lowest index
Attempted: lowest index, but test_assign expects the highest
Options: A) user instruction (free text) / B) follow the how / or C) follow the test""",
        DEPARTS,
        "03_assign",
        "the how wants ties to the lowest index",
        "lowest index, but test_assign expects the highest",
        [("B", "follow the how"), ("C", "follow the test"), ("A", "user instruction (free text)")],
    ),
    "Gemini: bold emoji header, star bullets, bold labels": Case(
        """**🛑 HARD PAUSE: [#3 upstream post condition must change]**

*   **Node:** `02_vector_math`
*   **Problem:** `mean()` must return a **list**, but 01's checkpoint stores tuples.
*   **Tried:** Converting in place.
*   **Options:**
    *   **A) Change 01's post condition to lists**
    *   **B) Keep tuples and convert here**
    *   **C) Your instruction**""",
        UPSTREAM,
        "02_vector_math",
        "`mean()` must return a list, but 01's checkpoint stores tuples.",
        "Converting in place.",
        [
            ("A", "Change 01's post condition to lists"),
            ("B", "Keep tuples and convert here"),
            ("C", "Your instruction"),
        ],
    ),
    "a quoted heading inside a longer answer": Case(
        """I looked at `kmeans/vector.py` and the checkpoint of 01.

> ### ⚠️ HARD PAUSE — [#3 upstream post condition must change]
> - Node: 02_vector_math
> - Problem: mean() must return a list, but 01's checkpoint stores tuples
> - Tried: converting in place; wrapping the result
> - Options: A) change 01's post condition to lists / B) keep tuples and convert here / C) your instruction

- I have not committed anything.
- The tree is clean.""",
        UPSTREAM,
        "02_vector_math",
        "mean() must return a list, but 01's checkpoint stores tuples",
        "converting in place; wrapping the result",
        EN_OPTIONS,
    ),
    "options as bullets without keys are lettered": Case(
        """硬暂停：[#2 实现思路与 how 本质偏离]
当前节点：01_load_points
问题描述：CSV 有分号分隔的行
建议选项：
- 同时支持分号
- 拒绝分号行并报错""",
        "#2 实现思路与 how 本质偏离",
        "01_load_points",
        "CSV 有分号分隔的行",
        "",
        [("A", "同时支持分号"), ("B", "拒绝分号行并报错")],
    ),
}


@pytest.mark.parametrize("case", CORPUS.values(), ids=list(CORPUS))
def test_decorated_blocks_are_read_exactly(case: Case) -> None:
    pause = parse_worker_block(["some earlier output", *case.text.splitlines()], GIVEN)
    assert pause is not None
    assert (pause.trigger, pause.node, pause.problem, pause.tried) == (
        case.trigger,
        case.node,
        case.problem,
        case.tried,
    )
    assert [(o.key, o.label) for o in pause.options] == case.options
    assert {o.action for o in pause.options} <= {"instruct"} and pause.source == "worker"


def test_the_corpus_covers_every_numbered_trigger() -> None:
    assert {case.trigger[:2] for case in CORPUS.values()} >= {"#1", "#2", "#3"}
    assert len(CORPUS) >= 25


# ---------------------------------------------------------------------------------------- fail safe


def test_a_header_followed_by_garbage_still_pauses_with_the_raw_text() -> None:
    lines = [
        "working on it",
        "**HARD PAUSE:** [#1 same L1 check failed 3 times]",
        "the check is broken ¯\\_(ツ)_/¯",
        "",
    ]
    pause = parse_worker_block(lines, "02_vector_math")
    assert pause is not None
    assert (pause.trigger, pause.node, pause.options) == (THREE_TIMES, "02_vector_math", [])
    assert pause.problem == "**HARD PAUSE:** [#1 same L1 check failed 3 times]\nthe check is broken ¯\\_(ツ)_/¯"


def test_a_block_without_options_or_problem_keeps_its_raw_text_and_node() -> None:
    text = "硬暂停：\n当前节点：03_assign\n问题描述：how 与测试矛盾\n请指示。"
    pause = parse_worker_block(text.splitlines(), GIVEN)
    assert pause is not None
    assert (pause.trigger, pause.node, pause.problem, pause.options) == ("worker asked", "03_assign", text, [])
    only_a_header = parse_worker_block(["## HARD PAUSE"], GIVEN)
    assert only_a_header is not None and only_a_header.problem == "## HARD PAUSE"


def test_a_header_at_the_end_of_a_long_output_is_found_and_the_raw_text_is_bounded() -> None:
    lines = [f"line {i}: nothing to see" for i in range(2000)] + ["HARD PAUSE: [#2]"] + ["junk"] * 100
    pause = parse_worker_block(lines, GIVEN)
    assert pause is not None and pause.trigger == DEPARTS
    assert pause.problem.splitlines() == ["HARD PAUSE: [#2]"] + ["junk"] * 30


@pytest.mark.parametrize(
    "lines",
    [
        ["all good", "committed"],
        ["I will not print a HARD PAUSE block, the checks pass."],
        ["If you cannot go on, print HARD PAUSE: [#<n> <trigger name>] and exit."],
        ["Hard pauses are for the person to decide.", "No hard pause needed: all 4 checks pass."],
        ["按协议，遇到问题时输出 硬暂停：[...]", "硬暂停条件均未触发。"],
        ["Node: 02_vector_math", "Problem: none", "Options: A) ship it"],
        [],
    ],
)
def test_chatter_that_mentions_hard_pauses_does_not_pause(lines: list[str]) -> None:
    assert parse_worker_block(lines, GIVEN) is None


# ------------------------------------------------------------------------------------- generated blocks

CANONICAL = {1: "same L1 check failed 3 times", 2: "implementation departs from the spec", 3: UPSTREAM[3:]}
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 数据节点问题上游条件修改失败检查结果实现思路"
texts = st.text(alphabet=ALPHABET, min_size=1, max_size=24).map(lambda s: " ".join(s.split())).filter(bool)
labels = texts.filter(lambda s: s.split()[-1].lower() != "or")  # a trailing "or" belongs to the separator
FREE_TEXT = ["your instruction", "用户指示", "你的指示", "user instruction", "your instruction (free text)"]

TRIGGER_FORMS = [
    "[#{n}{name}]",
    "【#{n}{name}】",
    "［{n}{name}］",
    "[{n}.{name}]",
    "#{n}:{name}",
    "[触发条件 {n}：{name}]",
    "**[#{n}{name}]**",
    "(#{n}{name})",
]
HEADERS = [
    "{kw}{colon} {trigger}",
    "**{kw}{colon}** {trigger}",
    "**{kw}**{colon} {trigger}",
    "## {kw}{colon} {trigger}",
]
HEADERS += ["⚠️ {kw}{colon} {trigger}", "🛑 **{kw}**{colon} {trigger}", "### ⚠️ {kw} — {trigger}"]
BARE_HEADERS = ["## {kw}", "**{kw}**", "🛑 {kw}", "### 硬暂停"]  # the trigger goes on the next line or in a field
FIELD_NAMES = {
    "node": ["Node", "当前节点", "节点", "Current node"],
    "problem": ["Problem", "问题描述", "问题"],
    "tried": ["Tried", "已尝试的方案", "已尝试", "Attempted"],
    "options": ["Options", "建议选项", "选项", "Suggested options"],
    "trigger": ["Trigger", "触发条件"],
}
FIELD_FORMS = ["{name}{colon}", "**{name}{colon}**", "**{name}**{colon}", "*{name}*{colon}", "__{name}__{colon}"]
BULLETS = ["", "- ", "* ", "+ ", "1. "]
KEY_FORMS = ["{k})", "{k}）", "({k})", "（{k}）", "{k}.", "**{k})**", "{k}:", "{k}："]
SEPARATORS = [" / ", " ／ ", "；", " | "]
FENCES = ["", "```", "```text", "~~~", "```markdown"]
CHATTER = [
    "I checked the upstream checkpoint first.",
    "I will not print a HARD PAUSE block unless I must.",
    "按协议，此时应输出硬暂停。",
    "Waiting for your decision.",
    "等待你的决定。",
]


class Generated(NamedTuple):
    lines: list[str]
    n: int
    name: str
    node: str
    problem: str
    tried: str
    options: list[tuple[str, str]]


@st.composite
def decorated_blocks(draw: st.DrawFn) -> Generated:
    n = draw(st.integers(1, 3))
    name = draw(st.one_of(st.just(""), texts))
    node = draw(st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True))
    problem, tried = draw(texts), draw(st.one_of(st.just(""), texts))
    written = draw(st.lists(labels, min_size=1, max_size=4))
    free = draw(st.sampled_from(FREE_TEXT))
    written.insert(draw(st.integers(0, len(written))), free)
    keys = [chr(ord("A") + i) for i in range(len(written))]
    expected = [(k, label) for k, label in zip(keys, written, strict=True) if label != free]
    expected.append((keys[written.index(free)], free))

    colon = draw(st.sampled_from([":", "："]))
    keyword = draw(st.sampled_from(["HARD PAUSE", "硬暂停", "Hard Pause"]))
    trigger = draw(st.sampled_from(TRIGGER_FORMS)).format(n=n, name=f" {name}" if name else "")
    bullet = draw(st.sampled_from(BULLETS))

    def field(key: str, value: str) -> str:
        form = draw(st.sampled_from(FIELD_FORMS)).format(name=draw(st.sampled_from(FIELD_NAMES[key])), colon=colon)
        return f"{bullet}{form} {value}".rstrip()

    where = draw(st.sampled_from(["header", "next line", "field"]))
    if where == "header":
        block = [draw(st.sampled_from(HEADERS)).format(kw=keyword, colon=colon, trigger=trigger)]
    else:
        block = [draw(st.sampled_from(BARE_HEADERS)).format(kw=keyword)]
        block.append(trigger if where == "next line" else field("trigger", trigger))
    node_value = draw(st.sampled_from(["{}", "`{}`", "**{}**"])).format(node)
    block += [field("node", node_value), field("problem", problem)] + ([field("tried", tried)] if tried else [])
    if draw(st.booleans()):
        block = [line for pair in zip(block, [""] * len(block), strict=True) for line in pair]  # blank lines between
    key_form = draw(st.sampled_from(KEY_FORMS))
    spaced = draw(st.sampled_from([" ", ""])) if key_form not in ("{k}.", "{k}:") else " "
    marked = [key_form.format(k=k) + spaced + label for k, label in zip(keys, written, strict=True)]
    if draw(st.booleans()):
        block.append(field("options", draw(st.sampled_from(SEPARATORS)).join(marked)))
    else:
        block.append(field("options", ""))
        indent = draw(st.sampled_from(["", "- ", "  - ", "* ", "   "]))
        block += [""] * draw(st.integers(0, 1)) + [indent + line for line in marked]

    fence = draw(st.sampled_from(FENCES))
    if fence:
        block = [fence, *block, fence[:3]]
    if draw(st.booleans()):
        block = [f"> {line}".rstrip() for line in block]
    before = draw(st.lists(st.sampled_from(CHATTER), max_size=3))
    after = draw(st.lists(st.sampled_from(CHATTER), max_size=3))
    gap = [""] if after and draw(st.booleans()) else []
    return Generated([*before, *block, *gap, *after], n, name, node, problem, tried, expected)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(decorated_blocks())
def test_no_decoration_loses_a_block(block: Generated) -> None:
    pause = parse_worker_block(block.lines, GIVEN)
    assert pause is not None, block.lines
    assert pause.trigger == f"#{block.n} {block.name or CANONICAL[block.n]}"
    assert (pause.node, pause.problem, pause.tried) == (block.node, block.problem, block.tried)
    assert [(o.key, o.label) for o in pause.options] == block.options
