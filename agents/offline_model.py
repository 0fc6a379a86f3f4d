"""The offline model: deterministic chat replies and extractive summaries.

Used when no Gemini key is configured, so that the sample agents run anywhere (kind,
CI, a laptop on a plane) and their answers can be asserted in tests. Same input, same
output: no randomness, no clock, and template choices use SHA-256 of the input
(Python's `hash()` is salted per process).

Chat recognises greetings, thanks, farewells and questions and names the message's
topic (its most specific words); it does not pretend to know facts. Summary is
extractive in the manner of Luhn (1958): sentences are scored by how frequent their
content words are in the whole text (a small stopword list aside) and the top N are
kept in their original order. Trade-off: no paraphrasing and English-centric
stopwords, but no dependencies and a summary that quotes the text faithfully.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence

from agentops_agents.model import Turn

# Summarising 100,000 characters takes ~30 ms of CPU; beyond this size it runs in a
# thread so that the event loop keeps answering /healthz meanwhile.
INLINE_SUMMARY_CHARS = 10_000
# A sentence without punctuation can be a whole document; a summary must stay short.
MAX_SENTENCE_CHARS = 500

STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves i'm it's don't can't won't isn't let's
    please tell know like want need get got one also us may might must shall
    """.split()
)

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# Whitespace after a sentence end, possibly behind a closing quote or bracket. Two
# lookbehinds because Python's must each have a fixed width.
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+")
# A piece ending like this did not end a sentence: "Dr. Smith", "e.g. this", "J. Doe".
_ABBREVIATION_END = re.compile(r"(?:\b(?:mr|mrs|ms|dr|prof|st|vs|etc|e\.g|i\.e|cf|no|fig)|\b[A-Z])\.$", re.IGNORECASE)

_GREETINGS = frozenset({"hi", "hello", "hey", "hiya", "howdy", "greetings", "morning", "evening", "afternoon"})
_THANKS = frozenset({"thanks", "thank", "thx", "cheers"})
_FAREWELLS = frozenset({"bye", "goodbye", "farewell", "cya"})
_QUESTION_STARTS = frozenset(
    {"what", "why", "how", "when", "where", "who", "which", "can", "could", "would", "should",
     "is", "are", "do", "does", "did", "will", "shall", "may", "might", "explain", "describe"}
)
# Chat-only filler: words that carry no topic in a greeting or a request for help.
_CHAT_FILLER = frozenset(_GREETINGS | _THANKS | _FAREWELLS | {"help", "there", "lot", "good", "ok", "okay", "yes", "hmm"})

_QUESTION_REPLIES = (
    "Good question about {topic}. I'm the offline model, so I can't look anything up; "
    "I'd start from the basics and work outwards from there.",
    "You're asking about {topic}. Without a live model I can only suggest splitting the "
    "question into smaller ones and checking each against the documentation.",
    "A question on {topic} needs a real model to answer well. Configure a Gemini key and "
    "ask me again, or tell me which part matters most to you.",
)
_STATEMENT_REPLIES = (
    "Noted: {topic}. Tell me more, or ask me a question.",
    "You mentioned {topic}. What would you like to know?",
    "Interesting point about {topic}. What made you think of it?",
)
_NO_TOPIC_REPLY = "I'm the offline chat agent. Ask me a question and I'll answer as well as an offline model can."
_GREETING_REPLY = "Hello! I'm the offline chat agent. What would you like to talk about?"


def words(text: str) -> list[str]:
    """Lower-cased words (letters and digits, inner apostrophes kept)."""
    return [w.replace("’", "'") for w in _WORD.findall(text.lower())]


def content_words(text: str) -> list[str]:
    """`words` without stopwords and single characters."""
    return [w for w in words(text) if len(w) > 1 and w not in STOPWORDS]


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, whitespace collapsed; paragraph breaks always end one."""
    sentences: list[str] = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        pieces = [p for p in _SENTENCE_BREAK.split(paragraph.strip()) if p]
        merged: list[str] = []
        for piece in pieces:
            if merged and (_ABBREVIATION_END.search(merged[-1]) or piece[0].islower()):
                merged[-1] = f"{merged[-1]} {piece}"
            else:
                merged.append(piece)
        sentences += [" ".join(s.split()) for s in merged]
    return [s for s in sentences if s]


def _shorten(sentence: str) -> str:
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return sentence
    cut = sentence[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0]
    return f"{cut}…"


def summarize(text: str, max_sentences: int) -> str:
    """The `max_sentences` most representative sentences of `text`, in original order."""
    sentences = split_sentences(text)
    if len(sentences) <= max_sentences:
        return " ".join(_shorten(s) for s in sentences)
    per_sentence = [content_words(s) for s in sentences]
    frequency = Counter(w for ws in per_sentence for w in ws)
    top = max(frequency.values(), default=1)

    def score(index: int) -> float:
        ws = per_sentence[index]
        if not ws:
            return 0.0
        # Dividing by sqrt(length) rather than length: long sentences are not
        # penalised into oblivion, and short ones do not win on one frequent word.
        return sum(frequency[w] for w in ws) / top / math.sqrt(len(ws))

    # Ties go to the earlier sentence, which keeps the choice deterministic.
    ranked = sorted(range(len(sentences)), key=lambda i: (-score(i), i))
    keep = sorted(ranked[:max_sentences])
    return " ".join(_shorten(sentences[i]) for i in keep)


def _choice(text: str, options: Sequence[str]) -> str:
    digest = hashlib.sha256(" ".join(words(text)).encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


def _topic_words(text: str) -> list[str]:
    """Up to three of the message's most specific (longest) words, in message order."""
    candidates = list(dict.fromkeys(w for w in content_words(text) if w not in _CHAT_FILLER))
    ranked = sorted(candidates, key=lambda w: (-len(w), candidates.index(w)))[:3]
    return [w for w in candidates if w in ranked]


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def chat_reply(message: str, history: Sequence[Turn] = ()) -> str:
    """A short, deterministic reply to `message` that names its topic."""
    tokens = words(message)
    topic = _topic_words(message)
    parts: list[str] = []
    if tokens and (tokens[0] in _GREETINGS or " ".join(tokens[:2]) in {"good morning", "good evening", "good afternoon"}):
        parts.append("Hello!")
    if _THANKS & set(tokens):
        parts.append("You're welcome.")
    if topic:
        question = message.rstrip().endswith("?") or (tokens[0] in _QUESTION_STARTS if tokens else False)
        parts.append(_choice(message, _QUESTION_REPLIES if question else _STATEMENT_REPLIES).format(topic=_join(topic)))
        earlier = {w for turn in history if turn.role == "user" for w in _topic_words(turn.text)}
        again = [w for w in topic if w in earlier]
        if again:
            parts.append(f"We touched on {_join(again)} earlier in this conversation, too.")
    elif parts == ["Hello!"]:
        parts = [_GREETING_REPLY]
    elif not parts:
        parts.append(_NO_TOPIC_REPLY)
    if _FAREWELLS & set(tokens):
        parts.append("Goodbye!")
    return " ".join(parts)


class OfflineModel:
    """`Model` over the functions above; never fails and never waits."""

    @property
    def name(self) -> str:
        return "offline"

    async def chat(self, message: str, history: Sequence[Turn]) -> str:
        return chat_reply(message, history)

    async def summarize(self, text: str, max_sentences: int) -> str:
        if len(text) <= INLINE_SUMMARY_CHARS:
            return summarize(text, max_sentences)
        return await asyncio.to_thread(summarize, text, max_sentences)
