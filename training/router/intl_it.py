"""Italian prompts for the router's training data, each category alike (see `intl.py`)."""

from __future__ import annotations

__all__ = ["BANK", "SLOTS"]

BANK: dict[str, list[str]] = {
    "code": [
        "Scrivimi una configurazione {tool} per {thing}.",
        "Scrivi uno script {tool} che {task}.",
        "Come posso {task2} con {tool}?",
        "Perché {tool} mi dà l'errore '{err}'?",
        "Mi spieghi questo codice?\n\n{code}",
        "Mi serve una funzione {tool} che {task}.",
        "Scrivi una query SQL che {sql}.",
    ],
    "reason": [
        "In quanti modi si possono sedere {a} persone su {b} sedie? Spiega il calcolo.",
        "Dimostra che il prodotto di {c} interi consecutivi è divisibile per {c}.",
        "Risolvi {a}x + {b} = {c}x − {a} spiegando ogni passaggio.",
        "Qual è la probabilità di pescare due assi da un mazzo di {b} carte? Ragiona passo per passo.",
    ],
    "chat": [
        "Scrivi una poesia su {topic}.",
        "Raccontami una storia su {topic}.",
        "Cosa ne pensi di {opinion}?",
        "Come gestisco {problem}?",
        "Dammi qualche idea per {plan}.",
    ],
    "fast": [
        "Qual è la capitale di {country}?",
        "Chi ha scritto {work}?",
        "Quanto fa {a} per {c}?",
        "Ciao!",
        "Grazie mille!",
        "Come si dice '{word2}' in inglese?",
    ],
}

SLOTS: dict[str, list[str]] = {
    "thing": ["Nextcloud", "un reverse proxy"],
    "task": ["cancella i file vecchi", "legge un file CSV"],
    "task2": ["aprire una porta", "annullare un commit"],
    "sql": ["trova i clienti senza ordini", "calcola le vendite per mese"],
    "topic": ["l'autunno", "il mare", "mia nonna"],
    "opinion": ["il lavoro da remoto", "le auto elettriche"],
    "problem": ["lo stress", "un collega difficile"],
    "plan": ["una vacanza in Grecia", "una festa a sorpresa"],
    "country": ["Germania", "Canada", "Giappone"],
    "work": ["la Divina Commedia", "I promessi sposi"],
    "word2": ["farfalla", "scoiattolo"],
}
