"""`fast` prompts: asks a small model answers in a word or a sentence.

Greetings and thanks, one-line facts, a word's translation, a unit conversion, one small
sum, a spelling or a synonym, a sentiment label, a yes/no fact, tech trivia (a default port,
an acronym). Several languages. Hard cases on purpose: tech words (`ssh`, `CPU`) in a trivia
question, and arithmetic that is one operation, not a problem.
"""

from __future__ import annotations

import random

from training.router.common import LANGS, Gen, fill, pick

__all__ = ["CLOSINGS", "GENERATORS"]

COUNTRIES = [  # en, fr, de, es, zh
    ("France", "la France", "Frankreich", "Francia", "法国"),
    ("Ireland", "l'Irlande", "Irland", "Irlanda", "爱尔兰"),
    ("Austria", "l'Autriche", "Österreich", "Austria", "奥地利"),
    ("Canada", "le Canada", "Kanada", "Canadá", "加拿大"),
    ("Japan", "le Japon", "Japan", "Japón", "日本"),
    ("Brazil", "le Brésil", "Brasilien", "Brasil", "巴西"),
    ("Egypt", "l'Égypte", "Ägypten", "Egipto", "埃及"),
    ("Norway", "la Norvège", "Norwegen", "Noruega", "挪威"),
    ("Kenya", "le Kenya", "Kenia", "Kenia", "肯尼亚"),
    ("Turkey", "la Turquie", "die Türkei", "Turquía", "土耳其"),
    ("Mexico", "le Mexique", "Mexiko", "México", "墨西哥"),
    ("Vietnam", "le Vietnam", "Vietnam", "Vietnam", "越南"),
    ("Portugal", "le Portugal", "Portugal", "Portugal", "葡萄牙"),
    ("Chile", "le Chili", "Chile", "Chile", "智利"),
    ("Poland", "la Pologne", "Polen", "Polonia", "波兰"),
    ("Thailand", "la Thaïlande", "Thailand", "Tailandia", "泰国"),
    ("Morocco", "le Maroc", "Marokko", "Marruecos", "摩洛哥"),
    ("Finland", "la Finlande", "Finnland", "Finlandia", "芬兰"),
    ("Argentina", "l'Argentine", "Argentinien", "Argentina", "阿根廷"),
    ("India", "l'Inde", "Indien", "India", "印度"),
    ("Switzerland", "la Suisse", "die Schweiz", "Suiza", "瑞士"),
    ("Nigeria", "le Nigeria", "Nigeria", "Nigeria", "尼日利亚"),
    ("Colombia", "la Colombie", "Kolumbien", "Colombia", "哥伦比亚"),
    ("Greece", "la Grèce", "Griechenland", "Grecia", "希腊"),
    ("Mongolia", "la Mongolie", "die Mongolei", "Mongolia", "蒙古"),
    ("Iceland", "l'Islande", "Island", "Islandia", "冰岛"),
]
WORDS = [
    "strawberry",
    "good night",
    "library",
    "bread",
    "water",
    "friend",
    "umbrella",
    "grandmother",
    "to run",
    "house",
    "tree",
    "computer",
    "beautiful",
    "window",
    "chicken",
    "sorry",
    "happy birthday",
    "moon",
    "key",
    "Eichhörnchen",
    "perro",
    "fromage",
    "Brot",
    "gracias",
    "welcome",
    "goodbye",
    "horse",
    "rain",
    "snow",
    "Feierabend",
    "mariposa",
    "bibliothèque",
    "see you tomorrow",
    "kitchen",
    "bicycle",
    "love",
    "cheese",
]
FACT_QUESTIONS = [
    "deepest lake on earth?",
    "What is the largest ocean?",
    "How many legs does a crab have?",
    "How many days does February have?",
    "chemical symbol for silver",
    "What's the boiling point of water in Fahrenheit?",
    "Who sculpted David?",
    "Who wrote Moby Dick?",
    "What year did the Cold War end?",
    "Is the moon a planet?",
    "is a peanut a nut?",
    "true or false: bats are blind",
    "how many continents are there",
    "speed of sound?",
    "what time zone is Sydney in",
    "How far is the sun from Earth?",
    "who invented the radio",
    "what's the largest planet",
    "How many bones are in the human body?",
    "smallest country in the world?",
    "When did the Berlin Wall fall?",
    "who discovered penicillin",
    "What's the longest river in Africa?",
    "how many players on a soccer team",
    "Which planet is closest to the sun?",
    "what is the freezing point of water",
    "currency of Japan?",
    "What language do they speak in Brazil?",
    "How many hearts does an octopus have?",
    "Who was the first person on the moon?",
    "When was the Eiffel Tower built?",
    "who wrote Hamlet",
    "what's the hardest natural material",
    "How many minutes in a day?",
    "largest desert on earth?",
    "what color do you get mixing blue and yellow",
    "How many strings does a violin have?",
    "which is bigger, a kilobyte or a megabyte?",
    "Is a whale a mammal?",
    "What is the square root of 144?",
    "How many sides does a hexagon have?",
    "who composed the four seasons",
    "what gas do plants breathe in",
    "population of Tokyo?",
    "What's the capital of Canada?",
    "when is Bastille Day",
    "what's the fastest land animal",
    "Which element has the atomic number 1?",
    "How tall is the Eiffel Tower?",
    "what does DNA stand for",
    "Who directed Jurassic Park?",
    "Do penguins live at the North Pole?",
    "how many hours is a marathon world record",
]
TECH_TRIVIA = [
    "default ftp port?",
    "What does USB stand for?",
    "what port does postgres use by default",
    "What does HTTP stand for?",
    "default port for https?",
    "what does GPU stand for",
    "How many bits in a byte?",
    "Who created Linux?",
    "what year was python released",
    "what does RAM stand for?",
    "what's the default mysql port",
    "What does DNS stand for?",
    "Is HTML a programming language?",
    "what does SSD stand for",
    "redis default port?",
    "who founded Microsoft",
    "what does VPN stand for",
    "What does the 'S' in HTTPS stand for?",
    "what's the latest LTS version of Ubuntu?",
    "which company makes the Raspberry Pi?",
    "what does NAS stand for",
    "What does HTTP 404 mean?",
    "what does sudo stand for",
    "default Grafana port",
    "how many bits in an IPv6 address",
    "What's localhost's IP?",
    "what does LLM stand for",
    "what does ECC RAM stand for?",
    "What is 1 TB in GB?",
]
CONVERSIONS = [
    ("km", "miles"),
    ("kg", "pounds"),
    ("inches", "cm"),
    ("cm", "inches"),
    ("grams", "ounces"),
    ("cups", "ml"),
    ("feet", "meters"),
    ("liters", "gallons"),
    ("celsius", "fahrenheit"),
    ("TB", "GB"),
    ("MiB", "MB"),
    ("hours", "minutes"),
    ("mph", "km/h"),
    ("yards", "meters"),
    ("acres", "hectares"),
]
REVIEWS = [
    "The parcel arrived two weeks late and half the cups were broken.",
    "friendliest barber I've ever been to",
    "Terrible customer service, never again.",
    "Works exactly as described, very happy.",
    "meh, it's okay I guess",
    "The battery died after two days.",
    "Absolutely loved the hotel staff!",
    "Not worth the money.",
    "great value, fast shipping",
    "the app keeps crashing, useless",
]
GREETINGS = [
    "hi",
    "hello!",
    "hey",
    "morning!",
    "hey there",
    "yo",
    "hello?",
    "Hi!",
    "good evening",
    "你好",
    "bonjour",
    "hola",
    "hallo",
    "ciao",
    "olá",
    "salut !",
    "Guten Morgen",
    "buenos días",
    "早上好",
    "hey, you there?",
    "howdy",
    "good afternoon",
    "hiya",
    "sup",
    "hello there!",
    "こんにちは",
    "hei",
]
CLOSINGS = [
    "thanks!",
    "thank you very much!",
    "alright, bye",
    "yes, that solved it. many thanks!",
    "thx",
    "cool, thanks",
    "great, that worked",
    "got it, thanks",
    "merci beaucoup !",
    "danke!",
    "gracias!",
    "谢谢",
    "ok thanks",
    "awesome, thank you!",
    "bye!",
    "that's all, thanks",
    "perfect",
    "ty!",
    "ok",
    "nice one, thanks",
    "that fixed it, thanks a lot",
    "super, merci",
    "vielen Dank!",
    "muchas gracias",
    "good night!",
    "see you",
    "thanks, that's what I needed",
    "great help, thank you",
    "grazie mille",
]
WORD_ASKS = [
    "synonym for angry",
    "antonym of humble",
    "plural of octopus?",
    "past tense of 'swim'?",
    "Is 'definately' spelled right?",
    "how do you spell necessary",
    "another word for big",
    "opposite of ancient",
    "what does 'ubiquitous' mean?",
    "define serendipity",
    "plural of mouse",
    "rhymes with orange?",
    "is it 'affect' or 'effect'?",
    "synonym for tired",
    "antonym of brave",
    "what's the past participle of 'write'?",
    "is 'irregardless' a real word?",
    "meaning of 'ephemeral'",
]

_EN = ["capital of {en}?", "What is the capital of {en}?", "{en} capital", "what's the capital city of {en}"]
_FR = ["Quelle est la capitale de {fr} ?", "capitale de {fr} ?"]
_DE = ["Was ist die Hauptstadt von {de}?", "Hauptstadt von {de}?"]
_ES = ["¿Cuál es la capital de {es}?", "capital de {es}?"]
_ZH = ["{zh}的首都是哪里？", "{zh}首都是什么？"]


def capital(rng: random.Random) -> str:
    en, fr, de, es, zh = pick(rng, COUNTRIES)
    table = pick(rng, [_EN, _EN, _FR, _DE, _ES, _ZH])
    return pick(rng, table).format(en=en, fr=fr, de=de, es=es, zh=zh)


def translate_word(rng: random.Random) -> str:
    word = pick(rng, WORDS)
    en, fr, de, es, it, pt, zh = pick(rng, LANGS)
    return pick(
        rng,
        [
            f"'{word}' in {en}?",
            f"How do you say '{word}' in {en}?",
            f"translate '{word}' to {en}",
            f"what's {word} in {en}",
            f"{word} in {en}",
            f"Was heißt '{word}' auf {de}?",
            f"Comment dit-on « {word} » en {fr} ?",
            f"¿Cómo se dice '{word}' en {es}?",
            f"'{word}'用{zh}怎么说？",
            f"Come si dice '{word}' in {it}?",
            f"Como se diz '{word}' em {pt}?",
            f"{en} word for {word}?",
        ],
    )


def convert(rng: random.Random) -> str:
    a, b = pick(rng, CONVERSIONS)
    n = pick(rng, ["3", "7", "12", "20", "40", "65", "100", "2.5", "250", "0.75", "18"])
    return pick(
        rng,
        [
            f"convert {n} {a} to {b}",
            f"{n} {a} in {b}",
            f"how many {b} in {n} {a}",
            f"{n} {a} to {b}?",
            f"{n} {a} is how many {b}?",
            f"what is {n} {a} in {b}",
            f"Combien de {b} font {n} {a} ?",
            f"Wie viele {b} sind {n} {a}?",
            f"¿Cuántos {b} son {n} {a}?",
            f"{n} {a}换算成{b}是多少？",
        ],
    )


def small_sum(rng: random.Random) -> str:
    a, b = rng.randint(2, 99), rng.randint(2, 30)
    op = pick(rng, ["+", "-", "*", "x", "/"])
    p = pick(rng, [5, 10, 15, 20, 25, 50])
    return pick(
        rng,
        [
            f"{a}*{b}=",
            f"{a} {op} {b}",
            f"what's {a} + {b}",
            f"what is {p} percent of {a * 4}",
            f"{a} times {b}?",
            f"Ça fait combien, {a} multiplié par {b} ?",
            f"Wie viel ist {a} mal {b}?",
            f"¿Cuánto es {a} por {b}?",
            f"{a}乘以{b}等于多少？",
            f"square root of {b * b}?",
            f"what is {a} divided by {b}",
            f"{a} + {b} = ?",
            f"half of {a * 2}?",
            f"{p} percent of {a * 10}",
            f"Quanto fa {a} per {b}?",
            f"is {a * 2 + 1} odd?",
        ],
    )


def sentiment(rng: random.Random) -> str:
    review = pick(rng, REVIEWS)
    return pick(
        rng,
        [
            f"Sentiment of this review, positive or negative: '{review}'",
            f"Label the sentiment: '{review}'",
            f'positive or negative? "{review}"',
            f"Is this review positive? {review}",
            f"one word sentiment: {review}",
            f'Classify as positive, negative or neutral: "{review}"',
        ],
    )


def facts(rng: random.Random) -> str:
    return pick(rng, FACT_QUESTIONS)


def tech(rng: random.Random) -> str:
    return pick(rng, TECH_TRIVIA)


def words(rng: random.Random) -> str:
    return pick(rng, WORD_ASKS)


def greeting(rng: random.Random) -> str:
    return pick(rng, GREETINGS)


def closing(rng: random.Random) -> str:
    return pick(rng, CLOSINGS)


_CITIES = ["New York", "Berlin", "Tokyo", "Sydney", "London", "Paris", "Los Angeles", "Dubai", "Beijing", "Madrid"]


def time_zone(rng: random.Random) -> str:
    a, b = rng.sample(_CITIES, 2)
    h = rng.randint(1, 12)
    return pick(
        rng,
        [
            f"what time is it in {a} when it's {h}pm in {b}?",
            f"time difference between {a} and {b}?",
            f"Wie spät ist es in {a}, wenn es in {b} {h} Uhr ist?",
            f"Quelle heure est-il à {a} quand il est {h}h à {b} ?",
            f"¿Qué hora es en {a} si en {b} son las {h}?",
            f"{b}{h}点的时候{a}是几点？",
            f"is {a} ahead of {b}?",
        ],
    )


def multilingual_fact(rng: random.Random) -> str:
    return fill(
        rng,
        "{q}",
        {
            "q": [
                "Qui a écrit Les Misérables ?",
                "Combien de joueurs dans une équipe de rugby ?",
                "Quel est le plus long fleuve du monde ?",
                "Wer hat die Relativitätstheorie entwickelt?",
                "Wie hoch ist der Mount Everest?",
                "Wann fiel die Berliner Mauer?",
                "¿Quién escribió Don Quijote?",
                "¿Cuántas horas tiene una semana?",
                "¿En qué año llegó el hombre a la luna?",
                "珠穆朗玛峰有多高？",
                "一年有多少天？",
                "谁发明了电话？",
                "Chi ha scritto la Divina Commedia?",
                "Quantos ossos tem o corpo humano?",
                "Quelle heure est-il à Tokyo quand il est midi à Paris ?",
                "Est-ce que le dauphin est un poisson ?",
                "Ist ein Wal ein Säugetier?",
                "¿Qué significa RAM?",
                "Quel est le symbole chimique du fer ?",
                "Was ist der Standardport von HTTPS?",
                "地球到月球有多远？",
                "Wie viele Kontinente gibt es?",
                "¿Cuál es el océano más grande?",
                "Qual è la capitale del Giappone?",
            ]
        },
    )


_WHO = {
    "wrote": [
        "Hamlet",
        "1984",
        "The Hobbit",
        "Don Quixote",
        "War and Peace",
        "the Odyssey",
        "Dracula",
        "Frankenstein",
        "The Little Prince",
        "One Hundred Years of Solitude",
        "Harry Potter",
        "the Communist Manifesto",
    ],
    "painted": [
        "The Starry Night",
        "The Scream",
        "Guernica",
        "the Sistine Chapel ceiling",
        "Girl with a Pearl Earring",
        "The Persistence of Memory",
        "Water Lilies",
    ],
    "invented": [
        "the light bulb",
        "the telephone",
        "the printing press",
        "the World Wide Web",
        "dynamite",
        "the airplane",
        "the transistor",
        "the steam engine",
        "Bluetooth",
        "the QR code",
    ],
    "discovered": ["penicillin", "gravity", "radium", "America", "the electron", "DNA's structure", "Pluto"],
    "composed": ["the Four Seasons", "the Moonlight Sonata", "the Magic Flute", "Bolero", "Clair de Lune"],
    "founded": ["Apple", "Tesla", "Amazon", "the Red Cross", "Rome", "Wikipedia", "IKEA"],
}
_SUPERLATIVE = [
    "largest",
    "smallest",
    "tallest",
    "longest",
    "deepest",
    "oldest",
    "hottest",
    "coldest",
    "most populous",
    "biggest",
    "highest",
]
_THINGS = [
    "ocean",
    "country",
    "mountain",
    "river",
    "lake",
    "desert",
    "city",
    "planet",
    "animal",
    "bird",
    "island",
    "volcano",
    "tree",
    "bone in the human body",
    "organ in the body",
    "moon of Jupiter",
    "waterfall",
]
_COUNT = [
    ("legs", "ant"),
    ("hearts", "octopus"),
    ("keys", "piano"),
    ("players", "rugby team"),
    ("strings", "guitar"),
    ("days", "week"),
    ("weeks", "year"),
    ("seconds", "hour"),
    ("sides", "octagon"),
    ("teeth", "adult human"),
    ("moons", "Mars"),
    ("stars", "US flag"),
    ("squares", "chessboard"),
    ("cards", "deck"),
    ("wheels", "tricycle"),
    ("bytes", "kilobyte"),
    ("chambers", "human heart"),
]
_WHEN = [
    "the Titanic sink",
    "World War 1 start",
    "the French Revolution begin",
    "the first iPhone come out",
    "humans land on the moon",
    "the Roman Empire fall",
    "Mozart die",
    "the euro launch",
    "Napoleon die",
    "the Chernobyl disaster happen",
    "the internet start",
    "Columbus reach America",
    "Nelson Mandela become president",
]


def composed_fact(rng: random.Random) -> str:
    verb = pick(rng, list(_WHO))
    n, thing = pick(rng, _COUNT)
    return pick(
        rng,
        [
            f"Who {verb} {pick(rng, _WHO[verb])}?",
            f"who {verb} {pick(rng, _WHO[verb])}",
            f"What is the {pick(rng, _SUPERLATIVE)} {pick(rng, _THINGS)} in the world?",
            f"{pick(rng, _SUPERLATIVE)} {pick(rng, _THINGS)}?",
            f"How many {n} does a {thing} have?",
            f"how many {n} in a {thing}",
            f"When did {pick(rng, _WHEN)}?",
            f"what year did {pick(rng, _WHEN)}",
            f"Which is the {pick(rng, _SUPERLATIVE)} {pick(rng, _THINGS)}?",
            f"{n} on a {thing}?",
        ],
    )


def empty(rng: random.Random) -> str:
    """Nothing to go on: the cheapest model answers "how can I help?" as well as any."""
    return pick(rng, ["", " ", "\n", "?", "...", "??", "hmm", "test", "ping", "."])


GENERATORS: list[tuple[float, Gen]] = [
    (0.4, empty),
    (2.0, capital),
    (2.5, translate_word),
    (2.0, convert),
    (2.0, small_sum),
    (1.0, sentiment),
    (2.0, facts),
    (3.0, composed_fact),
    (2.0, tech),
    (1.5, words),
    (1.5, greeting),
    (1.5, closing),
    (2.0, multilingual_fact),
    (0.7, time_zone),
]
