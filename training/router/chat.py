"""`chat` prompts: everything open-ended: writing, long explanations, advice, summaries, role-play.

Hard cases on purpose: tech words in prose asks (a poem about Python the snake, the history of
Unix, a cover letter for a DevOps job, a story about a home server), explanations for a
layperson (how vaccines or public-key crypto work), and pasted prose with digits in it.
"""

from __future__ import annotations

import random

from training.router.common import NAMES, Gen, pick
from training.router.prose import draft, notes, paragraph

__all__ = ["GENERATORS", "TOPICS"]

TOPICS = [
    "autumn leaves",
    "the sea at night",
    "my grandmother's kitchen",
    "a lighthouse keeper",
    "moving to a new city",
    "a rainy Monday",
    "friendship",
    "a parrot who only speaks in questions",
    "the first snow",
    "a broken umbrella",
    "coffee",
    "the Rust crab learning to swim",
    "a laptop that refuses to update",
    "an old NAS humming in the attic",
    "a lonely satellite",
    "a goat who wants to be a firefighter",
    "the last day of summer",
    "a lost sock",
    "city lights",
    "an old bicycle",
    "a whale made of shipping containers",
    "a hedgehog who is scared of balloons",
    "growing tomatoes",
    "a time traveller stuck in 1999",
    "the night shift at a bakery",
    "a village with no internet",
    "my first car",
    "a penguin in the desert",
    "a tired router blinking at 3am",
    "grandpa's vinyl records",
    "a fox in the city",
]
_FORMS = [
    "poem",
    "short story",
    "limerick",
    "haiku",
    "song",
    "fairy tale",
    "sonnet",
    "bedtime story",
    "short sci-fi story",
]
_TONES = [
    "",
    " Funny but heartfelt.",
    " Keep it under 200 words.",
    " Make it melancholic.",
    " For a 6-year-old.",
    " In the style of Dr. Seuss.",
    " with a twist at the end",
    " about 500 words",
    "",
]
_RECIPIENTS = [
    "my landlord",
    "my boss",
    "a client",
    "my kid's teacher",
    "the HOA",
    "a customer who complained",
    "my team",
    "a recruiter",
    "my neighbour",
    "the city council",
]
_SUBJECTS = [
    "asking to repaint the bedroom",
    "asking for a week off in August",
    "declining a project politely",
    "apologising for a late delivery",
    "about the noise at night",
    "following up on an interview",
    "announcing that I'm leaving the company",
    "asking for a refund",
    "asking to get a cat in the flat",
]
_JOBS = ["junior DevOps engineer", "nurse", "barista", "data analyst", "product manager", "teacher", "sysadmin"]
_EXPLAIN = [
    "how the immune system remembers old infections",
    "the causes of the First World War",
    "how a VPN keeps you private",
    "the history of the printing press and its effect on Europe",
    "what life was like for a medieval peasant",
    "the difference between Buddhism and Hinduism",
    "how the stock market works",
    "why the Roman Empire fell",
    "how black holes form",
    "the history of the internet",
    "how inflation affects ordinary people",
    "what happened on the Apollo 13 mission",
    "how jazz developed in New Orleans",
    "how glaciers shape valleys",
    "the pros and cons of nuclear power",
    "how our sense of smell works",
    "how the electoral college works",
    "why the sky is blue, in depth",
    "how coral reefs are formed and why they are dying",
    "the plot of Hamlet",
    "how search engines rank pages, for a non-technical person",
    "the ideas of Karl Marx in simple terms",
    "how antibiotics resistance develops",
    "the rise and fall of the Ottoman Empire",
    "how email actually gets delivered",
]
_AUDIENCE = [
    "",
    " for a layperson",
    " in detail",
    " to someone non-technical, with an analogy",
    " for a high school student",
    ", go into some depth",
    " like I'm 12",
    "",
]
_ADVICE = [
    "My new manager micromanages everything and I'm losing motivation. How do I handle it without quitting?",
    "I'm thinking about going back to university at 35 to study nursing. How should I think it through?",
    "my roommate never cleans up and it's driving me crazy. how do I bring it up without a fight?",
    "I'm {age} and want to learn to draw. How should I structure my practice so I don't give up?",
    "Our cat started peeing outside the litter box after we moved. What could help?",
    "How do I tell my friend that her constant lateness bothers me without hurting her?",
    "I got two job offers, one pays more and one has better people. How should I think about it?",
    "I want to start running but I always give up after a week. Any tips to stay motivated?",
    "my teenage son barely talks to me anymore, how do I reconnect with him?",
    "I'm moving abroad alone for the first time next month. What should I prepare, emotionally and practically?",
    "How can I get better at public speaking? I freeze every time.",
    "what are some ways to save money on groceries for a family of 4?",
    "I was a {job} for ten years and feel stuck. How do people figure out what to do next?",
    "my best friend is getting married and I can't afford the bachelorette trip. how do I tell her?",
]
_PLANS = [
    "Give me a 4-day itinerary for {city} in {month}. I love museums and street food but hate crowds.",
    "Plan a relaxed weekend in {city} for my parents, they can't walk far.",
    "Make me a weekly meal plan that's vegetarian and cheap.",
    "Create a 4-week beginner workout plan, 3 days a week.",
    "Help me plan a surprise 40th birthday party for my wife on a budget.",
    "Suggest a study plan for learning Spanish in 6 months.",
    "present ideas for my dad who likes fishing and jazz, under 80 euros",
    "Plan a rainy-day program for two bored kids aged 5 and 8.",
]
_BRAINSTORM = [
    "Brainstorm 20 blog post ideas about sourdough baking.",
    "Give me 12 names for a D&D campaign set in a frozen north.",
    "name ideas for a bakery that sells sourdough",
    "10 fun team-building activities for a remote team",
    "Give me ideas for a kid's birthday party with a dinosaur theme",
    "Suggest names for my new kitten, she's grey and fluffy",
    "ideas for a date night at home",
    "What are some good conversation starters for a networking event?",
    "Brainstorm slogans for a neighbourhood repair café.",
    "list podcast topics for a show about old video games",
]
_OPINION = [
    "What are the pros and cons of living without a car? I want a balanced view.",
    "Debate both sides: should homework be banned in primary school? Then say which side convinces you.",
    "What's your honest opinion on reality TV?",
    "Is it worth buying an electric car in 2025? Give me your view.",
    "Write a ~500 word essay on whether social media does more harm than good.",
    "Should kids learn to code in primary school? Discuss.",
    "Which is better for a family, a city apartment or a house in the suburbs?",
    "Is a four-day work week a good idea?",
]
_ROLEPLAY = [
    "Let's play a game: you are a suspicious border guard in a fantasy kingdom and I'm trying to get through.",
    "Commander, the dragon has breached the east wall! What do we do?",
    "Pretend you're a tour guide in ancient Athens and show me around.",
    "You are Sherlock Holmes. I've just walked into 221B with a strange letter.",
    "*pushes open the tavern door* Any rooms left for the night?",
    "Act as my job interviewer for a nursing position and ask me the first question.",
    "Be a pirate and tell me about your best treasure hunt.",
    "You're a wise old tree in an enchanted forest. A lost child asks you the way home.",
    "roleplay as my strict but kind piano teacher",
    "Detective, they found the butler in the wine cellar. What's your first move?",
    "*draws sword* Stand aside, troll, or face me!",
    "Doctor, the patient in room 4 is asking for you again. Should I tell him the truth?",
    "Your Majesty, the peasants are at the gates demanding bread. How do you answer them?",
    "Stay in character as a 1920s radio host and introduce tonight's show.",
    "Mission control, we've lost cabin pressure. Please advise!",
]
_OPEN = [
    "What would happen if humans could photosynthesize? Let your imagination run.",
    "If you could live in any decade, which would it be and why?",
    "What makes a friendship last for decades?",
    "Why do some songs get stuck in our heads? Tell me what's known about it.",
    "How would the world be different if the printing press had never been invented?",
    "What's the most underrated skill a person can learn, in your view?",
    "If cats could talk, what would they complain about? Make it funny.",
    "How do I find meaning in a job that feels pointless?",
    "What are your favourite things about autumn and why?",
    "Can you tell me about the life of Marie Curie and what drove her?",
    "What's it like to live on a research station in Antarctica?",
    "How should I think about whether to have children? I'm really torn.",
    "Talk me through the history of tea, from China to Britain.",
]
_REWRITE = [
    "Can you summarize this in two sentences for our community newsletter?\n\n{para}",
    "Summarize this:\n\n{para}",
    "Explain this paragraph to a child:\n\n{para}",
    "Polish this so I can send it to my boss:\n\n{draft}",
    "Turn these notes into a short summary email for the team:\n\n{notes}",
    "Proofread this and make it flow better:\n\n{para}",
    "tl;dr this please\n\n{para}",
    "Make this email friendlier:\n\n{draft}",
    "Résume ce texte en deux phrases :\n\n{para}",
    "Fasse diesen Text kurz zusammen:\n\n{para}",
    "what are the key points here?\n\n{para}",
    "Rewrite this in a more formal tone:\n\n{draft}",
]
_FOREIGN = [
    "Explique-moi en détail comment fonctionne la démocratie athénienne.",
    "Kannst du mir eine Karte zum Ruhestand meiner Kollegin schreiben? Sie war 30 Jahre bei uns.",
    "Escríbeme un poema sobre el mar en invierno.",
    "帮我写一封给老朋友的信，告诉他我要结婚了。",
    "Écris une histoire courte sur un renard qui veut voler.",
    "Erzähl mir etwas über die Geschichte Berlins.",
    "¿Qué consejos me das para mejorar mi relación con mi jefe?",
    "Scrivi una lettera di presentazione per un lavoro da barista.",
    "Me dá dicas para organizar uma viagem de 10 dias por Portugal?",
    "给我讲讲唐朝的历史和文化。",
    "Quels sont les avantages et les inconvénients du télétravail ?",
    "Schreib eine kurze Rede für die Hochzeit meines Bruders.",
    "Explícame cómo funciona la fotosíntesis con detalle.",
    "我最近工作压力很大，晚上睡不着，你有什么建议吗？",
    "Rédige un e-mail poli à mon propriétaire pour signaler une fuite d'eau.",
    "Wie kann ich meinen Garten insektenfreundlicher gestalten?",
    "Écris-moi un discours pour l'anniversaire de mon père.",
    "Cuéntame la historia de los mayas de forma amena.",
    "Was sind gute Tipps gegen Prüfungsangst?",
    "请给我推荐几本适合假期读的小说，并说说理由。",
]


_WRITE_INTL = [  # (language's ask, topics in that language)
    (
        "Écris un {f} sur {t}.",
        ["poème", "conte", "petit texte", "histoire courte"],
        ["la mer", "mon grand-père", "l'automne", "un chat curieux", "Paris sous la pluie", "un robot jardinier"],
    ),
    (
        "Schreib ein {f} über {t}.",
        ["Gedicht", "Märchen", "kurzes Lied", "Gedicht für Kinder"],
        ["den Winter", "meine Katze", "den ersten Schultag", "einen mutigen Igel", "das Meer"],
    ),
    (
        "Escríbeme un {f} sobre {t}.",
        ["poema", "cuento corto", "relato", "cuento para niños"],
        ["un gato aventurero", "el verano", "mi abuela", "una tortuga valiente", "la lluvia"],
    ),
    (
        "Scrivi una {f} su {t}.",
        ["poesia", "storia breve", "favola"],
        ["il mare d'inverno", "un cane fedele", "Roma di notte"],
    ),
    ("Escreve um {f} sobre {t}.", ["poema", "conto curto"], ["o outono", "um gato preguiçoso", "Lisboa"]),
    ("给我写一{f}关于{t}的作品。", ["首诗", "个故事", "篇短文"], ["春天", "大海", "我的家乡", "一只小猫", "月亮"]),
    ("帮我写{f}，主题是{t}。", ["一首诗", "一个童话", "一段祝福语"], ["友情", "秋天", "妈妈的生日", "雪"]),
]
_DETAILS_INTL = [
    " Mi hija tiene {n} años.",
    " Elle a {n} ans.",
    " Er wird {age}.",
    " Environ {w} mots.",
    " Etwa {w} Wörter.",
    " 大概{w}字。",
    " Para {n} personas.",
    " Il compie {age} anni.",
]


def creative_intl(rng: random.Random) -> str:
    template, forms, topics = pick(rng, _WRITE_INTL)
    text = template.format(f=pick(rng, forms), t=pick(rng, topics))
    if rng.random() < 0.35:
        text += pick(rng, _DETAILS_INTL).format(
            n=rng.randint(3, 12), age=rng.randint(30, 90), w=rng.choice([100, 200, 300, 500])
        )
    return text


_PAIRS = [
    ("Judaism and Christianity", "religion"),
    ("Impressionism and Expressionism", "art"),
    ("capitalism and socialism", "economics"),
    ("the Greek and Roman gods", "myth"),
    ("baroque and classical music", "music"),
    ("introverts and extroverts", "people"),
    ("the British and American school systems", "education"),
    ("Sunni and Shia Islam", "religion"),
    ("stoicism and existentialism", "philosophy"),
    ("tea culture in Japan and England", "culture"),
    ("the French and American revolutions", "history"),
    ("modern and classical architecture", "art"),
]
_EVENTS = [
    "the fall of the Berlin Wall",
    "the Black Death",
    "the invention of the steam engine",
    "the moon race",
    "the collapse of the Soviet Union",
    "the Renaissance",
    "the spread of smartphones",
    "the Dust Bowl",
    "the end of the Mayan civilization",
    "the rise of social media",
    "the Meiji Restoration",
    "the abolition of slavery in Brazil",
]


def open_question(rng: random.Random) -> str:
    pair, _ = pick(rng, _PAIRS)
    event = pick(rng, _EVENTS)
    return pick(
        rng,
        [
            f"What are the main differences between {pair}?",
            f"How do {pair} differ, and why does it matter?",
            f"Why did {event} happen?",
            f"What caused {event}, and what were the consequences?",
            f"How did {event} change everyday life?",
            f"What was the impact of {event} on ordinary people?",
            f"Can you compare {pair} for me?",
            f"What do historians think about {event}?",
            f"Quelles sont les différences entre {pair} ?",
            f"Was waren die Folgen von {event}?",
            f"¿Por qué ocurrió {event}?",
        ],
    )


_SITUATIONS = [
    "a coworker who takes credit for my work",
    "a neighbour who plays loud music at night",
    "procrastination",
    "a breakup after six years",
    "jealousy in my relationship",
    "stage fright",
    "homesickness",
    "a friend who only talks about herself",
    "a boss who emails me at midnight",
    "my parents' constant criticism",
    "feeling lonely after moving",
    "burnout",
    "a roommate who never pays on time",
    "my kid's tantrums",
    "imposter syndrome at a new job",
    "grief after losing my dog",
    "a group project where nobody else works",
    "saying no to extra work",
    "a toxic group chat",
    "comparing myself to others online",
]
_GOALS = [
    "become more confident",
    "sleep better",
    "eat healthier without dieting",
    "stay motivated to exercise",
    "read more books",
    "be a better listener",
    "make my small flat feel cosy",
    "get along with my in-laws",
    "stop overthinking",
    "enjoy my commute",
    "feel less anxious before exams",
    "make my wedding speech memorable",
    "keep in touch with old friends",
]
_HYPOTHETICALS = [
    "a perfect Sunday for an introvert",
    "life on a generation ship",
    "a world without money",
    "my city in 100 years",
    "school if it were designed by kids",
    "a day in the life of a medieval knight",
    "a holiday on the moon",
    "a restaurant run by cats",
    "the internet if it had been invented in 1900",
    "a city with no cars",
]
_TONES2 = [
    "more confident",
    "more polite",
    "less formal",
    "friendlier",
    "more professional",
    "warmer",
    "more concise",
    "funnier",
]
_LINES = [
    "so yeah I could maybe do the slides, if nobody else wants to.",
    "We regret to inform you that your order is delayed.",
    "hey can u send me the photos from saturday",
    "I'm not sure I'm the right person but I'd like to try.",
    "The meeting is cancelled. Sorry.",
    "Please stop parking in front of my garage.",
    "I guess the party was fine.",
]
_ABOUT = [
    "Frida Kahlo",
    "the Aztecs",
    "the Great Wall of China",
    "Ada Lovelace",
    "the Vikings",
    "Mozart's childhood",
    "Venice",
    "the history of chocolate",
    "the Northern Lights",
    "Cleopatra",
    "the Silk Road",
    "Nelson Mandela",
    "the Beatles",
]


def life(rng: random.Random) -> str:
    """Advice, imagination, rewording and 'tell me about': open-ended, in everyday phrasing."""
    sit, goal, hyp, about = pick(rng, _SITUATIONS), pick(rng, _GOALS), pick(rng, _HYPOTHETICALS), pick(rng, _ABOUT)
    return pick(
        rng,
        [
            f"How do I deal with {sit}?",
            f"How should I handle {sit}?",
            f"Any advice on {sit}?",
            f"What should I do about {sit}?",
            f"How can I {goal}?",
            f"How do I {goal}?",
            f"I want to {goal}. Where do I start?",
            f"What would {hyp} look like?",
            f"Imagine {hyp}. Describe it.",
            f"Describe {hyp} in vivid detail.",
            f"What would {hyp} be like? Be creative.",
            f"Rewrite this to sound {pick(rng, _TONES2)}: '{pick(rng, _LINES)}'",
            f'Make this {pick(rng, _TONES2)}: "{pick(rng, _LINES)}"',
            f"Can you rephrase this so it sounds {pick(rng, _TONES2)}? {pick(rng, _LINES)}",
            f"Tell me about {about}.",
            f"Cuéntame sobre {about}.",
            f"Parle-moi de {about}.",
            f"Erzähl mir von {about}.",
            f"Raccontami di {about}.",
            f"给我讲讲{about}。",
            f"Fale-me sobre {about}.",
            f"What was {about} like?",
            f"¿Cómo puedo {pick(rng, ['dormir mejor', 'ser más paciente', 'hacer amigos'])}?",
            f"Comment gérer {pick(rng, ['le stress au travail', 'une rupture', 'un collègue difficile'])} ?",
            f"Wie gehe ich mit {pick(rng, ['Stress im Job', 'Liebeskummer', 'einem schwierigen Kollegen'])} um?",
        ],
    )


def creative(rng: random.Random) -> str:
    form, topic = pick(rng, _FORMS), pick(rng, TOPICS)
    return pick(
        rng,
        [
            f"Write a {form} about {topic}.",
            f"write me a {form} about {topic}",
            f"Can you write a {form} on {topic}?",
            f"I need a {form} about {topic} for my partner's birthday card.",
            f"Compose a {form} about {topic}",
        ],
    ) + pick(rng, _TONES)


def practical(rng: random.Random) -> str:
    a, b = pick(rng, NAMES), pick(rng, NAMES)
    return pick(
        rng,
        [
            f"Write a polite email to {pick(rng, _RECIPIENTS)} {pick(rng, _SUBJECTS)}.",
            f"Write a cover letter for a {pick(rng, _JOBS)} position. I'm switching from retail and I'm a fast learner.",
            f"Write a best-man speech for {a} and {b}, who met on a delayed train. Keep it light.",
            "Write a product description for hand-dyed wool socks for my online shop.",
            f"Help me write a LinkedIn post announcing my new job as a {pick(rng, _JOBS)}.",
            f"Write a short bio for {a}, a photographer who loves the mountains.",
            f"Write a eulogy for my grandfather {a}, who was a carpenter and loved fishing.",
            "draft a complaint letter to my airline about lost luggage",
            f"write a thank you note to {a} for hosting us last weekend",
            "Write a speech for my daughter's graduation party.",
        ],
    )


def explain(rng: random.Random) -> str:
    topic, audience = pick(rng, _EXPLAIN), pick(rng, _AUDIENCE)
    return pick(
        rng,
        [
            f"Explain {topic}{audience}.",
            f"Can you explain {topic}{audience}?",
            f"Tell me about {topic}.",
            f"I've always wondered about {topic}. Can you walk me through it{audience}?",
            f"Give me an overview of {topic}{audience}.",
        ],
    )


def advice(rng: random.Random) -> str:
    return pick(rng, _ADVICE).format(job=pick(rng, _JOBS), age=rng.randint(30, 60))


def plans(rng: random.Random) -> str:
    city = pick(rng, ["Kyoto", "Lisbon", "Denver", "Rome", "Edinburgh", "Mexico City", "Vienna", "Seoul"])
    return pick(rng, _PLANS).format(city=city, month=pick(rng, ["mid-November", "April", "July", "December"]))


def rewrite(rng: random.Random) -> str:
    return pick(rng, _REWRITE).format(para=paragraph(rng), draft=draft(rng), notes=notes(rng))


def _table(table: list[str]) -> Gen:
    def gen(rng: random.Random) -> str:
        return pick(rng, table)

    return gen


def followup_chat(rng: random.Random) -> str:
    """A reply in a long conversation that continues it: chat whatever came before."""
    return pick(
        rng,
        [
            "ok different topic: can you write a short rhyme for my niece's first birthday card?",
            "great, now write the next chapter where the two of them finally meet",
            "perfect. now describe the castle as they arrive, make it spooky but not gory",
            "he loves cooking too. anything along those lines? we can spend about 40 euros",
            "that sounds good but I'm worried about the money side. how do people usually deal with that?",
            "hmm I don't know, I feel like he just doesn't listen. what would you say to him in my place?",
            "can you make it more personal? she's been my friend since school",
            "that's lovely but can you make the ending happier and mention our dog Max somewhere in the middle?",
            "ok I like the tone, but it's too long for a card. can you cut it down and keep the joke about the cake?",
            "thanks, that helps. but what if she says no? how do I handle that conversation without it getting awkward?",
            "good ideas! which of those would work best if we only have one free evening and a small budget?",
            "now tell the same story from the point of view of the villain, and make him a bit sympathetic",
        ],
    )


GENERATORS: list[tuple[float, Gen]] = [
    (3.0, creative),
    (1.5, creative_intl),
    (2.0, practical),
    (3.0, explain),
    (2.0, advice),
    (1.2, plans),
    (1.0, _table(_BRAINSTORM)),
    (1.5, _table(_OPINION)),
    (1.5, _table(_ROLEPLAY)),
    (1.5, _table(_OPEN)),
    (2.0, open_question),
    (3.0, life),
    (2.5, rewrite),
    (2.0, _table(_FOREIGN)),
    (0.6, followup_chat),
]


_DETAILS = [
    " I'm {age} and live in a {n}-bedroom flat.",
    " It's for Saturday the {day}th.",
    " Budget is about {money} euros.",
    " Keep it under {words} words.",
    " My daughter is {n} years old.",
    " We have {n} weeks until the move.",
    " It should take about {n} minutes to read out loud.",
    " I can only spend {n}-{n2} hours a week on it.",
    " It's our {n}th anniversary.",
    " This was back in {year}.",
    " There will be {guests} guests.",
    " I've been at this job for {n} years.",
    " Think of a {n}-month plan.",
    " She turns {age} on the {day}th.",
]


def details(rng: random.Random) -> str:
    """A personal detail with numbers, as people add to open-ended asks (digits are not math)."""
    n = rng.randint(2, 12)
    return pick(rng, _DETAILS).format(
        age=rng.randint(6, 90),
        n=n,
        n2=n + rng.randint(1, 5),
        day=rng.randint(4, 28),
        money=rng.choice([20, 50, 100, 300, 1500]),
        words=rng.choice([150, 300, 500, 800]),
        year=rng.randint(1900, 2023),
        guests=rng.randint(5, 120),
    )
