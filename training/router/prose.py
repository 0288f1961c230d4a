"""Pasted prose for chat prompts: paragraphs, notes and drafts to summarise or rewrite.

Built from sentence banks on everyday topics, so a "summarise this" prompt carries a
realistic amount of ordinary text, with numbers and dates here and there (prose has digits
too; digits alone must not mean math).
"""

from __future__ import annotations

import random

from training.router.common import NAMES, pick, picks

__all__ = ["draft", "notes", "paragraph"]

_SENTENCES = [
    "The old mill by the river was turned into a small museum about the town's textile history.",
    "Visitors can watch a working loom and try spinning wool themselves on weekends.",
    "Our neighbourhood garden started in 2019 with six raised beds and a borrowed wheelbarrow.",
    "Volunteers now meet every Saturday morning to weed, water and share whatever is ripe.",
    "Tides are caused mainly by the pull of the moon on the oceans, with a smaller effect from the sun.",
    "The new library wing will open in September and include a quiet study room and a maker space.",
    "The bakery on the corner has been run by the same family for three generations.",
    "They still use the original stone oven, which takes four hours to heat up each morning.",
    "The city council voted to extend the bike lane network by 12 kilometres over the next two years.",
    "Residents raised concerns about parking, deliveries and the loss of trees along Main Street.",
    "The museum's winter exhibition brings together paintings from three centuries of Dutch artists.",
    "Ticket sales were 20% higher than last year, mostly thanks to school visits.",
    "Sleep researchers recommend a regular bedtime and little screen light in the hour before sleep.",
    "Coffee was first cultivated in Ethiopia and Yemen before spreading to the rest of the world.",
    "The school fundraiser raised enough money to repaint the gym and buy new sports equipment.",
    "Honeybees communicate the direction of food through a movement known as the waggle dance.",
    "The hiking trail was closed for two weeks after the storm brought down several old pines.",
    "Migrating birds use the stars, the sun and the earth's magnetic field to find their way.",
    "The festival will feature local bands, food trucks and a craft market on both days.",
    "Customer feedback shows that people love the new menu but find the wait times too long.",
]
_NOTE_LINES = [
    "{a} will book the venue for the summer party, {b} checks the catering quotes",
    "website redesign slipped two weeks, {a} to talk to the freelancer",
    "new coffee machine approved, {b} orders it",
    "{a} presents the volunteer numbers at the next meeting",
    "parking rules for visitors unclear - {b} drafts a one-pager",
    "holiday rota still missing three names",
    "{a} raised that the office printer is broken again",
    "agreed to try a shared calendar for vacation planning",
]
_DRAFT = [
    "hi all so the heating in building b is off again and facilities said maybe thursday, sorry for the cold",
    "hey guys, the party is on saturday, bring food if u want, my place, starts around 7 i think",
    "i am writing to say that the product i got was not good and i want my money back because it broke",
    "we did a lot of stuff this quarter, sales went up a bit, some people left, the new tool is kinda working",
    "dear sir, i want to apply for the job, i have experience and i am hard working and i learn fast",
    "the trip was fun but the hotel was meh and it rained two days out of four, food was amazing tho",
]


def paragraph(rng: random.Random, sentences: int | None = None) -> str:
    """A paragraph of ordinary prose."""
    return " ".join(picks(rng, _SENTENCES, sentences or rng.randint(3, 7)))


def notes(rng: random.Random) -> str:
    """Meeting notes as people jot them down."""
    a, b = picks(rng, NAMES, 2)
    lines = [line.format(a=a, b=b) for line in picks(rng, _NOTE_LINES, rng.randint(3, 6))]
    return f"Sync {rng.randint(1, 12)}/{rng.randint(1, 28)}, attendees: {a}, {b}\n" + "\n".join(
        f"- {line}" for line in lines
    )


def draft(rng: random.Random) -> str:
    """A rough draft someone wants polished."""
    return pick(rng, _DRAFT)
