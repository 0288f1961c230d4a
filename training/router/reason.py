"""`reason` prompts: multi-step math, proofs, logic puzzles, probability, estimation, careful analysis.

Numbers are drawn fresh for every prompt so the model learns the shape of a problem (quantities
linked by a question that needs several steps), not particular values. Some prompts ask for
steps explicitly, most do not: "show your work" must not be the only cue. Short but hard asks
(`Prove that √3 is irrational`, `remainder of 7^100 mod 13`) are here too, so that shortness
alone does not mean `fast`.
"""

from __future__ import annotations

import random

from training.router.common import NAMES, Gen, pick, picks

__all__ = ["GENERATORS"]

_STEPS = [
    "",
    "",
    "",
    " Show your work.",
    " Explain your reasoning.",
    " Think step by step.",
    " Show each step.",
    " Walk me through it.",
    " Justify your answer.",
    " step by step please",
    " show the math",
]


def _steps(rng: random.Random) -> str:
    return pick(rng, _STEPS)


def rates(rng: random.Random) -> str:
    a, b, c = rng.randint(2, 9), rng.randint(3, 12), rng.randint(1, 4)
    v1, v2, d = rng.randint(3, 9), rng.randint(40, 90), rng.randint(100, 500)
    late, early = rng.randint(2, 15), rng.randint(2, 15)
    n1, n2 = picks(rng, NAMES, 2)
    return pick(
        rng,
        [
            f"One hose fills a paddling pool in {a * 10} minutes, a second in {b * 10}. Using both, how many minutes does it take?",
            f"{n1} can paint a fence in {a} hours, {n2} in {b} hours. How long does it take if they work together?",
            f"A train leaves at {c}:00 PM going {v2} mph. Another leaves {d} miles away an hour later at {v2 + 10} mph toward it. When do they meet?",
            f"Cycling to the station at {v1 + 10} km/h I miss the train by {late} minutes; at {v1 + 14} km/h I wait {early} minutes. How far away is the station?",
            f"A boat goes {d // 10} km upstream in {c + 1} hours and back in {c} hours. What is the speed of the current?",
            f"{a} workers build a wall in {b} days. How many days would {a + c} workers need, at the same rate?",
            f"A car travels the first half of a trip at {v2 - 20} km/h and the second half at {v2 + 20} km/h. What is its average speed?",
            f"A cyclist leaves at {v1 + 10} km/h; {c} hours later a car follows at {v2} km/h. When does the car catch up?",
            f"A drain empties a pool in {b} hours and a pump fills it in {a} hours. Both run from empty: how long to fill?",
            f"If {a} machines make {a} widgets in {a} minutes, how long do {a * 20} machines take to make {a * 20} widgets?",
        ],
    ) + _steps(rng)


def ages(rng: random.Random) -> str:
    n1, n2 = picks(rng, NAMES, 2)
    a, k, y = rng.randint(20, 45), rng.randint(2, 4), rng.randint(3, 15)
    return pick(
        rng,
        [
            f"When {n1} was {y} years old, {n2} was {k} times as old. Now {n2} is only twice as old as {n1}. How old is each?",
            f"In {y} years {n1} will be {k} times as old as {n2}. Today the sum of their ages is {a + 20}. How old are they?",
            f"A father is {k} times as old as his son. In {y} years he will be {k - 1} times as old. How old is the son?",
            f"{n1}'s age is {k} times {n2}'s. {y} years ago it was {k + 2} times. Find both ages.",
        ],
    ) + _steps(rng)


def probability(rng: random.Random) -> str:
    n = rng.randint(2, 6)
    p, fp, prev = rng.choice([90, 95, 99]), rng.choice([1, 2, 5, 10]), rng.choice([100, 500, 1000, 10000])
    people = rng.randint(10, 60)
    cost, win = rng.randint(1, 5), rng.randint(5, 30)
    return pick(
        rng,
        [
            f"I roll {n} dice. What is the probability that at least one shows a six?",
            f"1 in {prev} emails is phishing. The filter flags {p}% of phishing and {fp}% of legitimate mail. Given an email is flagged, how likely is it phishing?",
            f"{n + 4} friends each pick a month at random for a party. What are the odds that two of them pick the same month?",
            f"An urn has {n + 3} red and {n} blue balls. I draw 3 without replacement. Probability of exactly 2 red?",
            f"A raffle sells 500 tickets at ${cost} each with one ${win * 20} prize and five ${win} prizes. What is the expected value of a ticket?",
            f"A family has {n} children. Given that at least one is a girl, what is the probability that all are girls?",
            f"I flip a fair coin {n + 5} times. What is the probability of getting exactly {n + 1} heads?",
            "Two cards are drawn from a deck. What's the probability both are aces, given at least one is an ace?",
            "On average, how many rolls of a die until I see every face at least once?",
            f"A drive has a {fp}% chance of failing each year. In a {n + 2}-drive array with one parity drive, what's the chance of data loss in a year?",
            f"If it rains on {p - 60}% of days and my forecast is right {p - 10}% of the time, how likely is rain when it predicts rain?",
            f"{people} people each pick a random number from 1 to 365. What is the probability that all are different?",
        ],
    ) + _steps(rng)


def combinatorics(rng: random.Random) -> str:
    n, k, m = rng.randint(5, 10), rng.randint(2, 4), rng.randint(3, 6)
    n1, n2 = picks(rng, NAMES, 2)
    return pick(
        rng,
        [
            f"How many ways can {n} runners line up in a row if {n1} must stand directly next to {n2}?",
            f"How many committees of {k} can be formed from {n} people if two of them cannot serve together?",
            f"A pizza place offers {m + 4} toppings. How many pizzas with at most {k} toppings can I order, and how many with exactly {k}?",
            f"How many paths are there from corner to corner of a {m}x{m} grid moving only right or up?",
            f"At a party of {n + 10} people everyone shakes hands once. How many handshakes, and why?",
            f"How many {k + 3}-letter passwords use letters and digits with at least one digit?",
            "How many ways to arrange the letters of MISSISSIPPI so that no two S are adjacent?",
            f"How many integers between 1 and {n * 100} are divisible by 3 or 5 but not both?",
        ],
    ) + _steps(rng)


def number_theory(rng: random.Random) -> str:
    a, b, m = rng.randint(2, 9), rng.randint(50, 300), rng.choice([7, 11, 13, 17, 19])
    c = rng.choice([21, 33, 45, 77, 91])
    return pick(
        rng,
        [
            f"Compute {a}^{b} mod {m} without a calculator.",
            f"Find the last two digits of {a}^{b}.",
            f"Find all positive integer pairs with xy = x + y + {c}.",
            f"Is {2 ** rng.randint(5, 9) - 1} prime? Justify.",
            f"What is the smallest positive integer that leaves remainder {a - 1} when divided by {a}, {a + 1} and {a + 2}?",
            f"Find gcd({b * a}, {b * 3 + a}) using the Euclidean algorithm.",
            f"How many trailing zeros does {b}! have?",
            f"Find all primes p such that p² + {a * 2} is also prime.",
            f"Solve {a}x ≡ {m - 1} (mod {m}).",
        ],
    ) + _steps(rng)


_PROOFS = [
    "Prove that there are infinitely many primes of the form 4k + 3.",
    "Prove by induction that 1 + 2 + ... + n = n(n+1)/2.",
    "Prove that n³ − n is divisible by 6 for every integer n.",
    "Show that every tree with n vertices has n − 1 edges.",
    "Prove that log2(3) is irrational.",
    "Prove that the harmonic series diverges.",
    "Prove the triangle inequality for real numbers.",
    "Show that any set of 5 integers contains 3 whose sum is divisible by 3.",
    "Prove that a group of prime order is cyclic.",
    "Prove that the product of four consecutive integers plus one is a perfect square.",
    "Prove that e is irrational.",
    "Show that among any 6 people there are 3 mutual friends or 3 mutual strangers.",
    "Prove that 2^n ≥ n² for n ≥ 4.",
    "Beweise, dass das Produkt zweier aufeinanderfolgender Zahlen immer gerade ist.",
    "Démontre qu'il existe une infinité de nombres premiers.",
    "Montre que n² + n est toujours pair.",
    "Demuestra que √5 es irracional.",
    "证明：任意三个连续整数的积能被6整除。",
    "Demuestra por inducción que 2^n > n para todo n natural.",
    "Dimostra che la somma dei primi n cubi è un quadrato perfetto.",
    "Prove que a soma de dois números pares é par.",
    "Prove that every bounded monotone sequence converges.",
]
_CALCULUS = [
    "Compute the limit of (1 + 1/n)^(2n) as n → ∞.",
    "Find the derivative of x^x and explain each step.",
    "Solve the system: 2x + 3y = 12, x − y = 1.",
    "Find the area between y = x² and y = 2x.",
    "Solve the ODE y' = 2y with y(0) = 3.",
    "Find the Taylor series of sin(x) around 0 up to x^5 and bound the error at x = 0.5.",
    "Is the matrix [[1,2],[2,4]] invertible? Explain using the determinant and rank.",
    "A cone-shaped tank drains at 2 litres per minute. How fast is the water level falling when it is 30 cm deep?",
    "Which cylinder of volume 1 litre has the smallest surface area?",
    "Diagonalize [[4, 1], [2, 3]] if possible.",
    "A triangle has sides 7, 8 and 9. Find its area and the radius of its inscribed circle.",
    "Évalue l'intégrale de 0 à 1 de x·ln(x) dx en détaillant.",
    "Löse das Gleichungssystem x + y = 10, x − y = 4.",
    "Calcula la derivada de f(x) = x³·sin(x) paso a paso.",
    "求函数 f(x)=x³−3x 的极值，并写出过程。",
]
_LOGIC = [
    "A farmer must cross a river with a wolf, a goat and a cabbage. The boat holds one item. How does he do it?",
    "If some A are B and no B are C, what can we conclude about A and C? Explain with a diagram.",
    "Five pirates split 100 coins by proposal and vote. What does the oldest propose, and why?",
    "Two guards, one always lies and one always tells the truth. With one question, find the safe door.",
    "Three people wear hats from a set of 2 red and 3 white; each sees the others. The third says he knows his color. Which is it?",
    "Is this argument valid: if it rains the ground is wet; the ground is wet; so it rained?",
    "A snail climbs 3 m a day and slips 2 m each night in a 10 m well. When does it get out?",
    "100 prisoners and a light bulb: what strategy guarantees they know everyone has visited?",
    "A lily pad patch doubles every day and covers the lake in 48 days. When did it cover half?",
    "Sally has 3 brothers. Each brother has 2 sisters. How many sisters does Sally have?",
    "You have 9 balls, one heavier. What is the minimum number of weighings to find it, and how?",
    "Four people cross a bridge at night with one torch; they take 1, 2, 5 and 10 minutes. What is the fastest crossing?",
    "I am thinking of a number: divided by 3 it leaves 2, by 5 it leaves 3, by 7 it leaves 2. What is the smallest such number?",
    "Three suspects: exactly one is lying. A says B did it, B says C did it, C says B is lying. Who did it?",
    "A clock loses 5 minutes every hour. It shows the right time at noon. When will it next show the right time?",
    "Every statement on this card is false. There are exactly two statements on it. Is that a paradox? Reason it out.",
    "A car odometer shows 15951, a palindrome. Two hours later it shows the next palindrome. What was the average speed?",
]


def short_probability(rng: random.Random) -> str:
    """Short questions that still need a derivation: shortness is not `fast`."""
    n = rng.randint(2, 9)
    return pick(
        rng,
        [
            f"What's the expected number of coin flips to get {n} heads in a row?",
            f"expected number of dice rolls until a {n % 6 + 1}?",
            "probability of two sixes in a row?",
            "odds of a full house in poker?",
            f"chance that {n + 20} people all have different birthdays?",
            f"How many ways can {n + 2} people shake hands?",
            f"sum of all integers from 1 to {n * 100} divisible by {n}?",
            f"P(at least {n - 1} heads in {n + 3} flips)?",
            f"How many zeros at the end of {n * 25}!?",
            f"Is {n}^{n + 10} + 1 divisible by {n + 1}?",
            f"Expected maximum of {n} dice?",
            "Probability a random chord is longer than the radius?",
        ],
    )


def fixed(rng: random.Random) -> str:
    return pick(rng, pick(rng, [_PROOFS, _CALCULUS, _LOGIC])) + _steps(rng)


def estimation(rng: random.Random) -> str:
    city = pick(rng, ["Lyon", "Paris", "Tokyo", "London", "Berlin", "New York", "my town of 50k people"])
    thing = pick(
        rng,
        [
            "plumbers",
            "golf balls fit in a school bus",
            "dentists",
            "gas stations",
            "tennis balls fit in this room",
            "liters of coffee are drunk per day",
            "window cleaners",
            "hairs are on a human head",
            "words does a person speak in a lifetime",
        ],
    )
    return pick(
        rng,
        [
            f"Estimate how many {thing} in {city}. Walk through your assumptions.",
            f"Fermi estimate: how many {thing}? Give a range.",
            f"Roughly how many {thing} are there in {city}? Reason it out.",
            "How many books could a 4 TB drive hold as plain text, and how long would it take to read them all aloud?",
            f"Estimate the energy a {pick(rng, ['fridge', 'gaming PC', 'NAS', 'heat pump'])} uses per year and what it costs at 0.30/kWh.",
        ],
    )


def applied(rng: random.Random) -> str:
    w1, w2, price = rng.randint(90, 300), rng.randint(40, 89), pick(rng, ["0.31", "0.25", "0.40", "0.18"])
    amount, rate, years = rng.choice([5000, 10000, 25000]), rng.choice([3, 4, 5, 7]), rng.choice([5, 10, 20])
    return pick(
        rng,
        [
            f"My freezer draws {w1} W a third of the time at ${price}/kWh. A new one draws {w2} W and costs 600. After how many years does it pay off?",
            f"I invest {amount} at {rate}% compounded monthly. How much after {years} years, and how long to double?",
            f"A {amount} loan at {rate}% over {years} years: what's the monthly payment and total interest?",
            f"Option A costs {amount} up front and {w2} a month; option B {amount // 2} and {w1} a month. Which is cheaper over {years} years, and when do they break even?",
            f"Three print jobs take {years}, {rate} and {years + rate} minutes and two printers are free. How should I split them to finish soonest? Reason carefully.",
            f"A backup runs every {rate} hours and takes {years} minutes; if a disk fails at a random moment, what is the expected amount of lost work?",
            f"Copying {rng.randint(2, 20)} TB over a {rng.choice([100, 1000, 2500])} Mbit/s link at 80% efficiency, then verifying at 200 MB/s: total time?",
            f"A shop raises prices by {rate * 4}% and then cuts them by {rate * 4}%. Is the final price higher or lower? By how much?",
        ],
    ) + _steps(rng)


def multilingual(rng: random.Random) -> str:
    a, b, c = rng.randint(20, 40), rng.randint(8, 20), rng.randint(2, 7)
    return pick(
        rng,
        [
            f"Un marchand achète un vélo {a * 10} €, le revend avec {c * 5} % de bénéfice, puis le rachète {c} % moins cher. Combien a-t-il gagné au total ? Explique ton raisonnement.",
            f"Un train part à {c}h à {a * 3} km/h, un autre à {c + 1}h à {a * 4} km/h dans la même direction. Quand le rattrape-t-il ? Détaille.",
            f"Ein Zug fährt mit {a * 3} km/h los, {c} Stunden später folgt einer mit {a * 4} km/h. Wann holt er ihn ein? Schritt für Schritt.",
            f"Wie groß ist die Wahrscheinlichkeit, mit {c} Würfeln mindestens eine Sechs zu werfen? Erkläre den Rechenweg.",
            f"En una urna hay {c + 3} bolas blancas y {c} negras. Si saco dos sin reposición, ¿qué probabilidad hay de que sean de distinto color? Explica.",
            f"Un grifo llena un depósito en {c} horas y otro en {c + 3}. ¿Cuánto tardan juntos? Razona paso a paso.",
            f"一件商品先涨价{c * 5}%，再降价{c * 5}%，最后的价格比原价高还是低？请一步一步推理。",
            f"一个水池有两个进水管，甲管{c}小时注满，乙管{c + 2}小时注满，两管同时开多久注满？请写出推理过程。",
            f"Se lancio una moneta {c + 4} volte, qual è la probabilità di ottenere almeno {c} teste? Spiega il ragionamento.",
            f"Um pai tem {a + 20} anos e o filho {c + 3}. Daqui a quantos anos o pai terá o dobro da idade do filho? Explique.",
            f"Quelle est la probabilité d'obtenir au moins un double six en {a} lancers de deux dés ? Justifie.",
            f"Zeige Schritt für Schritt, wie viele Diagonalen ein {b}-Eck hat.",
        ],
    )


def reason_intl(rng: random.Random) -> str:
    a, b, c = rng.randint(2, 9), rng.randint(10, 60), rng.randint(2, 5)
    return pick(
        rng,
        [
            f"Ein Rechteck hat den Umfang {b * 2} cm und ist {c} cm länger als breit. Wie groß ist die Fläche? Rechne Schritt für Schritt.",
            f"Beweise, dass {a}^n − 1 für jedes n durch {a - 1} teilbar ist.",
            f"Wie wahrscheinlich ist es, bei {c + 1} Würfen genau {c} Sechsen zu werfen?",
            f"Montre que la somme des {b} premiers entiers vaut {b * (b + 1) // 2}.",
            f"Combien de façons y a-t-il de choisir {c} élèves parmi {b} ? Justifie.",
            f"Un robinet remplit une cuve en {a} heures, un autre la vide en {a + c} heures. En combien de temps se remplit-elle ? Détaille le calcul.",
            f"Demuestra que el producto de {c} números consecutivos es divisible por {c}.",
            f"¿Cuántos números de {c} cifras distintas se pueden formar con los dígitos 1 a {a}? Razona.",
            f"Un coche gasta {a} litros cada 100 km. ¿Cuánto cuesta un viaje de {b * 10} km si el litro vale 1,{b} €? Explica paso a paso.",
            f"Quante strette di mano ci sono tra {b} persone? Spiega il ragionamento.",
            "Prove que existem infinitos números primos.",
            "Qual é a probabilidade de tirar duas cartas vermelhas seguidas de um baralho? Explique.",
            f"证明：{a}的任意次幂减1都能被{a - 1}整除。",
            f"一个班有{b}人，至少有几人同月生日？请说明理由。",
            f"甲乙两人相距{b}千米，相向而行，速度分别是{a}和{a + c}千米每小时，几小时相遇？请写出步骤。",
        ],
    )


def careful(rng: random.Random) -> str:
    return pick(
        rng,
        [
            "ok now what if the second pipe only opens after the first has run for an hour? recompute everything step by step",
            "Think step by step: which is larger, 2^100 or 3^63?",
            "Carefully analyze: is 1/0.9 more than 1.1? Prove it.",
            "I need a careful step-by-step analysis: a coin lands heads 60 times out of 100. Is it biased at the 5% level?",
            "Work out whether a 6% raise with 4% inflation beats a 2% raise with 0% inflation over three years.",
            "Step by step, how many different ways can you make change for a dollar with standard US coins?",
            "Reason carefully: if all but two of my pets are dogs, all but two are cats, and all but two are parrots, how many pets do I have?",
            "Compute the expected number of coin flips to get two heads in a row, with a derivation.",
            "Analyze this: a die is rolled until a 6 appears. What's the probability the number of rolls is even?",
        ],
    )


_FUNCS = [
    "x^3 - 3x",
    "x^2 e^{-x}",
    "ln(x)/x",
    "sin(x) cos(x)",
    "x^4 - 8x^2",
    "x e^x",
    "(x^2 + 1)/(x - 1)",
    "sqrt(x) ln(x)",
    "x^x",
    "arctan(x^2)",
    "e^{-x^2}",
    "x^3 - 6x^2 + 9x + 1",
]


def algebra(rng: random.Random) -> str:
    a, b, c, d = (rng.randint(2, 12) for _ in range(4))
    f = pick(rng, _FUNCS)
    return pick(
        rng,
        [
            f"Solve for x: {a}x + {b} = {c}x - {d}",
            f"Solve {a}x^2 - {b}x - {c} = 0",
            f"Solve the system {a}x + {b}y = {c}, {d}x - y = {a}",
            f"Find the maximum and minimum of f(x) = {f} on [0, {a}].",
            f"Differentiate f(x) = {f} and find where f'(x) = 0.",
            f"Evaluate the integral of {f} from 0 to {a}.",
            f"Find the limit as x → 0 of ({a}x - sin({a}x))/x^3.",
            f"For which values of k does {a}x^2 + kx + {b} = 0 have two real roots?",
            f"Find the inverse of f(x) = ({a}x + {b})/({c}x - {d}).",
            f"Does Σ n^{a % 3 + 1}/{b}^n converge? Prove it.",
            f"Solve |{a}x - {b}| < {c} + x.",
            f"Find the sum of the series Σ ({a}/{b + a})^n for n ≥ 1.",
            f"Find the equation of the tangent to y = {f} at x = 1.",
            f"Solve {a}^x = {b * 7}, exact and approximate.",
            f"Résous {a}x + {b} = {c}x − {d} et vérifie.",
            f"Löse {a}x² − {b}x − {c} = 0 mit Rechenweg.",
            f"Resuelve el sistema {a}x + {b}y = {c}, {d}x − y = {a}.",
            f"解方程：{a}x + {b} = {c}x − {d}，并写出步骤。",
        ],
    ) + _steps(rng)


def proofs(rng: random.Random) -> str:
    p, k, n = pick(rng, [3, 5, 6, 7, 10, 11, 15]), pick(rng, [2, 3, 5, 7]), rng.randint(2, 9)
    q = pick(rng, [7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 97, 101])
    return pick(
        rng,
        [
            # Short asks too: "prove that 7 is prime" is four words, and must not read as a quick fact.
            f"prove that {q} is prime",
            f"prove {q} is a prime number",
            f"show that {q * k} is not prime",
            f"prove sqrt {p} is irrational",
            f"prove that {q}² − 1 is divisible by 8",
            "prove that the sum of two odd numbers is even",
            f"Prove that √{p} is irrational.",
            f"Prove that n^{k} − n is divisible by {k} for every integer n.",
            f"Prove by induction that {n}^n > n! fails or holds for n ≥ {n}.",
            f"Show that the product of {k} consecutive integers is divisible by {k}!.",
            f"Prove that there is no largest prime of the form {k}n + {k - 1 if k > 2 else 1}.",
            "Prove that every integer > 1 has a prime factor.",
            f"Show that a graph with {n + 3} vertices and {n + 3} edges contains a cycle.",
            f"Prove that if n² is divisible by {k}, so is n.",
            f"Beweise, dass √{p} irrational ist.",
            f"Démontre par récurrence que {k}^n ≥ 1 + {k - 1}n.",
            "Demuestra que n² − n es par para todo entero n.",
            f"证明：对任意整数n，n^{k}−n能被{k}整除。",
            f"Dimostra che √{p} è irrazionale.",
        ],
    )


_ITEMS = [
    ("pet", ["cat", "dog", "rabbit", "parrot"]),
    ("drink", ["tea", "coffee", "milk", "juice"]),
    ("house", ["red", "blue", "green", "yellow"]),
    ("job", ["baker", "nurse", "pilot", "teacher"]),
    ("car", ["Fiat", "Volvo", "Tesla", "Honda"]),
    ("sport", ["tennis", "chess", "golf", "rowing"]),
]
_WORDS = ["bloops", "razzies", "lazzies", "wugs", "florbs", "snarks", "glims", "toves", "zents", "mibs"]


def puzzle(rng: random.Random) -> str:
    """A small logic grid or syllogism with fresh names: reasoning without digits."""
    people = picks(rng, NAMES, 3)
    (kind_a, items_a), (kind_b, items_b) = picks(rng, _ITEMS, 2)
    a, b = picks(rng, items_a, 3), picks(rng, items_b, 3)
    w = picks(rng, _WORDS, 3)
    return pick(
        rng,
        [
            (
                f"{people[0]}, {people[1]} and {people[2]} each have a different {kind_a} ({', '.join(a)}) and {kind_b} ({', '.join(b)}). "
                f"{people[0]} doesn't have the {a[0]}. The one with the {a[1]} has the {b[2]}. {people[2]} has the {b[0]}. Who has what?"
            ),
            f"All {w[0]} are {w[1]}. No {w[1]} are {w[2]}. Does it follow that no {w[0]} are {w[2]}? Explain.",
            f"Some {w[0]} are {w[1]} and all {w[1]} are {w[2]}. Must some {w[0]} be {w[2]}? Give a counterexample if not.",
            f"{people[0]} says {people[1]} is lying. {people[1]} says {people[2]} is lying. {people[2]} says both of them are lying. Who tells the truth?",
            f"{people[0]} is taller than {people[1]}, {people[2]} is shorter than {people[1]}, and {people[0]} is not the tallest of all four with Kim. Who could be tallest? Reason it out.",
            f"Exactly one of {people[0]}, {people[1]} and {people[2]} broke the vase. {people[0]}: 'It wasn't me.' {people[1]}: 'It was {people[2]}.' {people[2]}: '{people[1]} is lying.' Only one tells the truth. Who did it?",
            f"If every {a[0]} owner drinks {b[0]} and {people[0]} drinks {b[1]}, what can you say about {people[0]}'s {kind_a}? Justify.",
        ],
    )


GENERATORS: list[tuple[float, Gen]] = [
    (1.5, puzzle),
    (1.2, short_probability),
    (1.5, reason_intl),
    (2.0, algebra),
    (2.0, proofs),
    (2.5, rates),
    (1.0, ages),
    (2.5, probability),
    (1.5, combinatorics),
    (1.5, number_theory),
    (2.5, fixed),
    (1.0, estimation),
    (1.5, applied),
    (2.0, multilingual),
    (1.0, careful),
]
