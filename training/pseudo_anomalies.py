"""Pseudo-anomalous captions: a normal caption with one anomaly rule's action or object written in, so a
scorer learns what the rule book calls anomalous without one anomaly label.

Templates read a rule's text as a list of actions ("Carrying, pointing or firing a gun or a knife" ->
carrying a gun, pointing a gun, firing a gun, carrying a knife) or of objects ("Missing, removed, or ajar
manhole covers" -> missing manhole covers, ...). An action replaces a normal activity the caption already
names ("the first person appears to be walking" -> "... to be riding a bicycle"), in the captioner's own
words; otherwise, and for objects, a sentence is inserted at a sentence boundary. A served teacher can
rewrite instead (`teacher_rewrites`); an answer that drops the rule's words, or calls its addition an anomaly,
falls back to the template.
"""

from __future__ import annotations

import random
import re

from axr.reasoning.schema import Rule

LIST_SEPARATORS = re.compile(r"\s*(?:[,;:/()]|\bsuch as\b|\bor\b|\betc\b\.?|\be\.g\.)\s*", re.IGNORECASE)
PERSON_WORDS = {"a", "the", "person", "people", "someone", "persons", "any"}
NO_PHRASE_START = ("very ", "when ", "not ", "security ")  # qualifiers, never a thing or an action alone
NORMAL_ACTIVITIES = re.compile(r"\b(walking|standing|sitting|strolling|moving)\b")
IN_VIEW = re.compile(r"\bthere (?:are|is) ", re.IGNORECASE)  # a captioner's list of what is in view
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
LABEL_WORDS = re.compile(r"\b(?:anomal\w*|abnormal\w*)", re.IGNORECASE)
STOP_WORDS = {"with", "without", "from", "into", "onto", "near", "around", "another", "their", "where", "when"}


def is_action_section(section: str) -> bool:
    """A section of rules about what people do (its name says people or activity), not things in the scene."""
    return any(word in section.lower() for word in ("human", "activit", "people", "person", "behavio"))


def _items(text: str) -> list[str]:
    items = [" ".join(part.split()).strip(" .") for part in LIST_SEPARATORS.split(text)]
    return [i for i in items if i and not i.lower().startswith(NO_PHRASE_START) and i.lower() != "etc"]


def _gerund_at(words: list[str]) -> int | None:
    """Where the action's verb is; "non-walking" qualifies a movement, it is none."""
    return next(
        (
            k
            for k, w in enumerate(words)
            if len(w) > 4 and w.lower().endswith("ing") and not w.lower().startswith("non-")
        ),
        None,
    )


def action_phrases(text: str) -> list[tuple[str, str]]:
    """(subject, action) pairs of an action rule, e.g. ("A person", "firing a gun")."""
    items = _items(text)
    parsed = []  # (subject words, gerund, object words) or (None, None, noun words) for an object alone
    for item in items:
        words = item.split()
        at = _gerund_at(words)
        if at is None:
            parsed.append((None, None, words))
            continue
        subject = [w for w in words[:at] if w.lower() not in PERSON_WORDS]
        parsed.append((subject, words[at].lower(), [w for w in words[at + 1 :] if w.lower() != "any"]))
    phrases = []
    for k, (subject, verb, rest) in enumerate(parsed):
        if verb is None:  # "a knife" after "firing a gun": the rule's first action, with this object
            before = [p for p in parsed[:k] if p[1] is not None]
            if before:
                phrases.append((before[0][0], f"{before[0][1]} {' '.join(rest)}"))
            continue
        if not rest:  # "carrying" before "firing a gun": shares the next action's object
            after = next((p[2] for p in parsed[k + 1 :] if p[1] is not None and p[2]), [])
            rest = after
        phrases.append((subject, " ".join([verb, *rest])))
    return [(" ".join(s).capitalize() if s else "A person", a.lower()) for s, a in phrases]


def object_phrases(text: str) -> list[str]:
    """The things an object rule names, e.g. "ajar manhole covers". A lone modifier before a longer item
    ("Missing, removed, or ajar manhole covers") takes that item's noun; a lone noun after a modified item
    ("Damaged manhole cover or trees", "a burning car or building") takes that item's modifier, since a
    bare "trees" names something every normal scene has."""
    items = _items(text)
    out = []
    for k, item in enumerate(items):
        words = item.split()
        longer = next((i.split() for i in items[k + 1 :] if len(i.split()) > 1), None)
        if len(words) == 1 and longer and _is_modifier(words[0]):
            words = [words[0], *longer[1:]]
        elif len(words) == 1 and k and (modifier := _modifier_of(items[k - 1])):
            words = [modifier, *words]
        out.append(" ".join(words).lower())
    return out


def _is_modifier(word: str) -> bool:
    return word.lower().endswith(("ing", "ed", "ajar"))


def _modifier_of(item: str) -> str | None:
    """The participle that opens an item of several words ("damaged", "burning"), if any."""
    words = [w for w in item.split() if w.lower() not in {"a", "an", "the"}]
    return words[0] if len(words) > 1 and _is_modifier(words[0]) else None


def rule_sentences(rule: Rule, section: str) -> list[str]:
    """Stand-alone caption sentences that report the rule happening."""
    if is_action_section(section):
        return [f"{subject} is {action}." for subject, action in action_phrases(rule.text)] or [rule.text]
    return [f"There {_be(thing)} {thing} in the scene." for thing in object_phrases(rule.text)] or [rule.text]


def _be(thing: str) -> str:
    """'are' for a plural thing ("vehicles", "unattended bags near ..."), else 'is'."""
    head = re.split(r"\b(?:on|in|near|to|from|with|without|coming|where|left|thrown)\b", thing)[0].split()
    plural = head and head[-1].endswith("s") and not head[-1].endswith("ss")
    return "are" if plural else "is"


def rule_words(rule: Rule) -> set[str]:
    """The rule's content words (the ones a pseudo-anomalous caption must carry)."""
    words = {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z-]{3,}", rule.text)}
    return (words | {k.lower() for k in rule.keywords}) - STOP_WORDS


def carries_rule(caption: str, rule: Rule) -> bool:
    lowered = caption.lower()
    return any(word in lowered for word in rule_words(rule))


def anomalous_actions(book_sections) -> re.Pattern | None:
    """A pattern for the actions the book's anomaly rules name ("riding a bicycle"), built once: a normal
    reference caption it finds contradicts the rule book (a captioner's mistake, or a rule the references do
    not bear out), and as a "no" row it tells the scorer the opposite of the rule. None if no rule names one."""
    actions = {
        action
        for section in book_sections
        if is_action_section(section.name)
        for rule in section.anomaly
        if rule.enabled
        for _, action in action_phrases(rule.text)
    }
    if not actions:
        return None
    return re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(actions))) + r")\b", re.IGNORECASE)


def pseudo_anomalous(caption: str, rule: Rule, section: str, rng: random.Random, list_share: float = 0.5) -> str:
    """The normal caption with the rule written in, where the captioner would have written it: an action
    replaces a normal activity the caption names (one, at random); a thing joins the caption's own list of
    what is in view ("there are trees, a bench" -> "there are vans, trees, a bench") in `list_share` of the
    cases; else one sentence goes in at a random sentence boundary."""
    if is_action_section(section):
        pairs = action_phrases(rule.text)
        activities = list(NORMAL_ACTIVITIES.finditer(caption))
        if pairs and activities:
            _, action = rng.choice(pairs)
            hit = rng.choice(activities)
            return caption[: hit.start()] + action + caption[hit.end() :]
    else:
        things, lists = object_phrases(rule.text), list(IN_VIEW.finditer(caption))
        if things and lists and list_share and rng.random() < list_share:  # 0: no draw (rows as before)
            at = rng.choice(lists).end()
            return f"{caption[:at]}{rng.choice(things)}, {caption[at:]}"
    sentences = SENTENCE_END.split(caption.strip())
    at = rng.randint(1, len(sentences)) if len(sentences) > 1 else 1
    sentences.insert(at, rng.choice(rule_sentences(rule, section)))
    return " ".join(sentences)


def teacher_rewrites(teacher, items: list[tuple[str, Rule]], domain: str) -> list[str | None]:
    """The teacher's rewrite of each (normal caption, anomaly rule): the same scene with that anomaly in it, in
    the caption's style, on one line and at most about twice the caption's length; None where it gave no
    answer or dropped the rule's words."""
    from axr.reasoning.backends import Sampling, system, user
    from axr.reasoning.prompting import render

    requests = [
        [system(render("pseudo_anomaly", domain=domain)), user(f"Caption: {caption}\nAnomaly: {rule.text}")]
        for caption, rule in items
    ]
    longest = max(len(caption.split()) for caption, _ in items)
    answers = teacher.generate(requests, Sampling(max_tokens=2 * longest + 32, temperature=0.0, stop=["\n"]))
    out = []
    for (caption, rule), answer in zip(items, answers, strict=True):
        text = " ".join(answer.text.split()).removeprefix("Caption:").strip().strip('"')
        labelled = names_the_label(text, f"{caption} {rule.text}")
        usable = not answer.error and text and carries_rule(text, rule) and not labelled
        out.append(text if usable else None)
    return out


def names_the_label(rewrite: str, source: str) -> bool:
    """A rewrite that calls what it added an anomaly ("The anomaly is a person lying on the ground"), where
    neither the caption nor the rule (`source`) has the word: a captioner never writes that, so a scorer
    trained on it would learn the word, not the scene. Qwen2.5-Coder-1.5B wrote it in 223 of 685 rewrites of
    ShanghaiTech's references."""
    return bool(LABEL_WORDS.search(rewrite)) and not LABEL_WORDS.search(source)
