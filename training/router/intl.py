"""Prompts in German, French, Spanish, Italian, Portuguese and Chinese, for every category alike.

Why a separate bank: when a language shows up mostly in one category, a linear model learns
"German means chat". Each language here gets code, reason, chat and fast templates in
about equal numbers, so the language's own words carry no label and the asks do.
Slots: {tool} a technology name, {a} {b} {c} numbers, and per-language word lists.
"""

from __future__ import annotations

import random

from training.router.common import pick

__all__ = ["LANGUAGES", "intl_prompt"]

_TOOLS = ["nginx", "Docker", "Python", "SQL", "Bash", "Kubernetes", "systemd", "Git", "JavaScript", "Go", "Rust", "PostgreSQL",
          "Ansible", "PowerShell", "Java", "C++", "TypeScript", "Home Assistant", "Traefik", "cron", "regex", "pandas"]

_BANK: dict[str, dict[str, list[str]]] = {
    "de": {
        "code": ["Schreib mir eine {tool}-Konfig für {thing}.", "Schreib ein {tool}-Skript, das {task}.",
                 "Wie kann ich mit {tool} {task2}?", "Warum bekomme ich bei {tool} den Fehler '{err}'?",
                 "Kannst du diesen Code erklären?\n\n{code}", "Was ist der Unterschied zwischen {x} und {y} in {tool}?",
                 "Ich brauche eine {tool}-Funktion, die {task}.", "Mein {tool}-Container startet nicht, Fehler: {err}. Was tun?",
                 "Schreib eine SQL-Abfrage, die {sql}.", "Wie sieht eine {tool}-Datei für {thing} aus?",
                 "Korrigiere bitte dieses Skript:\n\n{code}", "Wie teste ich eine {tool}-Funktion mit Unit-Tests?"],
        "reason": ["Wie viele verschiedene Möglichkeiten gibt es, {a} Personen auf {b} Stühle zu setzen? Erkläre die Rechnung.",
                   "Auf wie viele Arten lassen sich die Buchstaben von {word} anordnen? Begründe.",
                   "Ein Zug fährt {a}0 km in {c} Stunden, ein zweiter {b}0 km in {a} Stunden. Welcher ist schneller und um wie viel?",
                   "Beweise, dass die Summe von {c} aufeinanderfolgenden Zahlen durch {c} teilbar ist.",
                   "Mit welcher Wahrscheinlichkeit zieht man aus {b} Karten zwei Asse? Rechne Schritt für Schritt.",
                   "Löse die Gleichung {a}x + {b} = {c}x − {a} und erkläre jeden Schritt.",
                   "Ein Kapital von {b}00 € wird mit {c} % verzinst. Nach wie vielen Jahren hat es sich verdoppelt?",
                   "Drei Freunde teilen {b}0 € im Verhältnis {a}:{c}:{b}. Wie viel bekommt jeder? Mit Rechenweg."],
        "chat": ["Schreib ein Gedicht über {topic}.", "Erzähl mir eine Geschichte über {topic}.",
                 "Was hältst du von {opinion}?", "Wie gehe ich mit {problem} um?", "Schreib eine Rede für {occasion}.",
                 "Erkläre mir ausführlich, wie {how} funktioniert.", "Gib mir Ideen für {plan}.",
                 "Formuliere diese Nachricht freundlicher: '{msg}'"],
        "fast": ["Was ist die Hauptstadt von {country}?", "Wie viele {unit1} sind {a} {unit2}?", "Was heißt '{word2}' auf Englisch?",
                 "Wer hat {work} geschrieben?", "Wie viel ist {a} mal {c}?", "Hallo!", "Danke dir!", "Wann war {event}?",
                 "Ist ein {animal} ein Säugetier?", "Wofür steht {abbr}?"],
    },
    "fr": {
        "code": ["Écris-moi une configuration {tool} pour {thing}.", "Fais un script {tool} qui {task}.",
                 "Comment faire pour {task2} avec {tool} ?", "Pourquoi {tool} me renvoie l'erreur '{err}' ?",
                 "Tu peux m'expliquer ce code ?\n\n{code}", "Quelle est la différence entre {x} et {y} en {tool} ?",
                 "J'ai besoin d'une fonction {tool} qui {task}.", "Mon conteneur {tool} plante avec : {err}. Une idée ?",
                 "Écris une requête SQL qui {sql}.", "À quoi ressemble un fichier {tool} pour {thing} ?",
                 "Corrige ce script s'il te plaît :\n\n{code}", "Comment écrire des tests unitaires pour une fonction {tool} ?"],
        "reason": ["De combien de façons peut-on asseoir {a} personnes sur {b} chaises ? Explique le calcul.",
                   "Combien d'anagrammes du mot {word} existe-t-il ? Justifie.",
                   "Un cycliste roule à {b} km/h, un autre part {c} h plus tard à {a}0 km/h. Quand le rattrape-t-il ? Détaille.",
                   "Démontre que le produit de {c} entiers consécutifs est divisible par {c}.",
                   "Quelle est la probabilité de tirer deux as dans un jeu de {b} cartes ? Étape par étape.",
                   "Résous {a}x + {b} = {c}x − {a} en justifiant chaque étape.",
                   "Un capital de {b}00 € placé à {c} % : en combien d'années double-t-il ? Explique.",
                   "Trois amis se partagent {b}0 € dans le rapport {a}:{c}:{b}. Combien chacun reçoit-il ? Détaille."],
        "chat": ["Écris un poème sur {topic}.", "Raconte-moi une histoire sur {topic}.", "Que penses-tu de {opinion} ?",
                 "Comment gérer {problem} ?", "Écris un discours pour {occasion}.", "Explique-moi en détail comment fonctionne {how}.",
                 "Donne-moi des idées pour {plan}.", "Reformule ce message pour qu'il soit plus aimable : '{msg}'"],
        "fast": ["Quelle est la capitale de {country} ?", "Combien de {unit1} dans {a} {unit2} ?", "Comment dit-on '{word2}' en anglais ?",
                 "Qui a écrit {work} ?", "Combien font {a} fois {c} ?", "Bonjour !", "Merci beaucoup !", "En quelle année {event} ?",
                 "Est-ce que le {animal} est un mammifère ?", "Que veut dire {abbr} ?"],
    },
    "es": {
        "code": ["Hazme una configuración de {tool} para {thing}.", "Escribe un script de {tool} que {task}.",
                 "¿Cómo puedo {task2} con {tool}?", "¿Por qué {tool} me da el error '{err}'?", "¿Me explicas este código?\n\n{code}",
                 "¿Cuál es la diferencia entre {x} y {y} en {tool}?", "Necesito una función en {tool} que {task}.",
                 "Mi contenedor de {tool} falla con: {err}. ¿Qué hago?", "Escribe una consulta SQL que {sql}.",
                 "¿Cómo sería un archivo de {tool} para {thing}?", "Arregla este script, por favor:\n\n{code}",
                 "¿Cómo hago pruebas unitarias para una función de {tool}?"],
        "reason": ["¿De cuántas formas se pueden sentar {a} personas en {b} sillas? Explica el cálculo.",
                   "¿Cuántos anagramas tiene la palabra {word}? Justifica.",
                   "Un ciclista va a {b} km/h y otro sale {c} h después a {a}0 km/h. ¿Cuándo lo alcanza? Paso a paso.",
                   "Demuestra que el producto de {c} enteros consecutivos es divisible por {c}.",
                   "¿Qué probabilidad hay de sacar dos ases de una baraja de {b} cartas? Razona.",
                   "Resuelve {a}x + {b} = {c}x − {a} justificando cada paso.",
                   "Un capital de {b}00 € al {c} %: ¿en cuántos años se duplica? Explica.",
                   "Tres amigos reparten {b}0 € en proporción {a}:{c}:{b}. ¿Cuánto recibe cada uno? Detalla."],
        "chat": ["Escribe un poema sobre {topic}.", "Cuéntame una historia sobre {topic}.", "¿Qué opinas de {opinion}?",
                 "¿Cómo manejo {problem}?", "Escribe un discurso para {occasion}.", "Explícame con detalle cómo funciona {how}.",
                 "Dame ideas para {plan}.", "Reescribe este mensaje para que suene más amable: '{msg}'"],
        "fast": ["¿Cuál es la capital de {country}?", "¿Cuántos {unit1} son {a} {unit2}?", "¿Cómo se dice '{word2}' en inglés?",
                 "¿Quién escribió {work}?", "¿Cuánto es {a} por {c}?", "¡Hola!", "¡Muchas gracias!", "¿En qué año {event}?",
                 "¿El {animal} es un mamífero?", "¿Qué significa {abbr}?"],
    },
    "it": {
        "code": ["Scrivimi una configurazione {tool} per {thing}.", "Scrivi uno script {tool} che {task}.",
                 "Come posso {task2} con {tool}?", "Perché {tool} mi dà l'errore '{err}'?", "Mi spieghi questo codice?\n\n{code}",
                 "Mi serve una funzione {tool} che {task}.", "Scrivi una query SQL che {sql}."],
        "reason": ["In quanti modi si possono sedere {a} persone su {b} sedie? Spiega il calcolo.",
                   "Dimostra che il prodotto di {c} interi consecutivi è divisibile per {c}.",
                   "Risolvi {a}x + {b} = {c}x − {a} spiegando ogni passaggio.",
                   "Qual è la probabilità di pescare due assi da un mazzo di {b} carte? Ragiona passo per passo."],
        "chat": ["Scrivi una poesia su {topic}.", "Raccontami una storia su {topic}.", "Cosa ne pensi di {opinion}?",
                 "Come gestisco {problem}?", "Dammi qualche idea per {plan}."],
        "fast": ["Qual è la capitale di {country}?", "Chi ha scritto {work}?", "Quanto fa {a} per {c}?", "Ciao!", "Grazie mille!",
                 "Come si dice '{word2}' in inglese?"],
    },
    "pt": {
        "code": ["Escreva uma configuração de {tool} para {thing}.", "Faça um script {tool} que {task}.",
                 "Como faço para {task2} com {tool}?", "Por que o {tool} dá o erro '{err}'?", "Pode me explicar este código?\n\n{code}",
                 "Preciso de uma função {tool} que {task}.", "Escreva uma consulta SQL que {sql}."],
        "reason": ["De quantas maneiras {a} pessoas podem sentar em {b} cadeiras? Explique o cálculo.",
                   "Prove que o produto de {c} inteiros consecutivos é divisível por {c}.",
                   "Resolva {a}x + {b} = {c}x − {a} explicando cada passo.",
                   "Qual a probabilidade de tirar dois ases de um baralho de {b} cartas? Passo a passo."],
        "chat": ["Escreva um poema sobre {topic}.", "Conte-me uma história sobre {topic}.", "O que você acha de {opinion}?",
                 "Como lidar com {problem}?", "Me dê ideias para {plan}."],
        "fast": ["Qual é a capital de {country}?", "Quem escreveu {work}?", "Quanto é {a} vezes {c}?", "Oi!", "Obrigado!",
                 "Como se diz '{word2}' em inglês?"],
    },
    "zh": {
        "code": ["帮我写一个{tool}配置，用于{thing}。", "写一个{tool}脚本，{task}。", "怎么用{tool}{task2}？", "{tool}报错'{err}'是什么原因？",
                 "解释一下这段代码：\n\n{code}", "{tool}里{x}和{y}有什么区别？", "用SQL查询{sql}。", "这个脚本哪里错了？\n\n{code}",
                 "怎么给{tool}函数写单元测试？", "我的{tool}容器启动失败：{err}，怎么办？"],
        "reason": ["{a}个人坐{b}把椅子，有多少种坐法？请写出计算过程。", "证明任意{c}个连续整数的乘积能被{c}整除。",
                   "解方程{a}x + {b} = {c}x − {a}，并说明每一步。", "从{b}张牌中抽两张，都是A的概率是多少？请一步一步推理。",
                   "一笔{b}00元的存款年利率{c}%，多少年后翻倍？请说明。", "甲乙丙按{a}:{c}:{b}分{b}0元，各得多少？写出步骤。"],
        "chat": ["写一首关于{topic}的诗。", "给我讲一个关于{topic}的故事。", "你怎么看{opinion}？", "我该怎么处理{problem}？",
                 "帮我写一篇{occasion}的发言稿。", "详细解释一下{how}是怎么运作的。", "给我一些{plan}的建议。"],
        "fast": ["{country}的首都是哪里？", "{a}乘以{c}等于多少？", "'{word2}'用英语怎么说？", "{work}是谁写的？", "你好！", "谢谢！",
                 "{abbr}是什么意思？", "{animal}是哺乳动物吗？"],
    },
}

_SLOTS: dict[str, dict[str, list[str]]] = {
    "de": {"thing": ["meine Nextcloud-Instanz", "einen Reverse Proxy", "meinen Heimserver", "eine Datenbank mit Backup"],
           "task": ["alle Logdateien älter als 30 Tage löscht", "eine CSV-Datei einliest", "den Speicherplatz prüft", "Dateien umbenennt"],
           "task2": ["einen Port freigeben", "eine Umgebungsvariable setzen", "alte Images löschen", "einen Branch zurücksetzen"],
           "sql": ["alle Kunden ohne Bestellung findet", "den Umsatz pro Monat berechnet", "doppelte Einträge löscht"],
           "topic": ["den Herbst", "meine Großmutter", "das Meer", "einen mutigen Igel"], "opinion": ["Homeoffice", "Elektroautos", "sozialen Medien"],
           "problem": ["Stress bei der Arbeit", "einem schwierigen Nachbarn", "Prüfungsangst"], "occasion": ["die Hochzeit meiner Schwester", "einen Abschied"],
           "how": ["das Immunsystem", "die Demokratie", "ein Kernkraftwerk"], "plan": ["einen Urlaub in Italien", "einen Kindergeburtstag"],
           "msg": ["Du bist schon wieder zu spät.", "Schick mir die Datei."], "country": ["Frankreich", "Kanada", "Japan", "Chile"],
           "unit1": ["Meter", "Gramm", "Minuten"], "unit2": ["Kilometer", "Kilogramm", "Stunden"], "word2": ["Schmetterling", "Eichhörnchen", "Feierabend"],
           "work": ["Faust", "die Blechtrommel"], "event": ["der Mauerfall", "die erste Mondlandung"], "animal": ["Wal", "Pinguin"], "abbr": ["DNA", "NATO"],
           "word": ["KAFFEE", "OTTO", "REGEN"], "x": ["Liste", "let"], "y": ["Tupel", "const"]},
    "fr": {"thing": ["mon instance Nextcloud", "un reverse proxy", "mon serveur maison", "une base de données"],
           "task": ["supprime les fichiers de plus de 30 jours", "lit un fichier CSV", "vérifie l'espace disque", "renomme des photos"],
           "task2": ["ouvrir un port", "définir une variable d'environnement", "supprimer les vieilles images", "annuler un commit"],
           "sql": ["trouve les clients sans commande", "calcule le chiffre d'affaires par mois", "supprime les doublons"],
           "topic": ["l'automne", "ma grand-mère", "la mer", "un renard curieux"], "opinion": ["le télétravail", "les voitures électriques", "les réseaux sociaux"],
           "problem": ["le stress au travail", "un voisin bruyant", "le trac avant un examen"], "occasion": ["le mariage de ma sœur", "un départ à la retraite"],
           "how": ["le système immunitaire", "la démocratie", "une centrale nucléaire"], "plan": ["des vacances en Espagne", "un anniversaire d'enfant"],
           "msg": ["Tu es encore en retard.", "Envoie-moi le fichier."], "country": ["l'Allemagne", "le Canada", "le Japon", "le Chili"],
           "unit1": ["mètres", "grammes", "minutes"], "unit2": ["kilomètres", "kilos", "heures"], "word2": ["papillon", "écureuil", "fromage"],
           "work": ["Les Misérables", "Le Petit Prince"], "event": ["a eu lieu la Révolution", "l'homme a marché sur la Lune"], "animal": ["dauphin", "pingouin"],
           "abbr": ["ONU", "SNCF"], "word": ["CHIEN", "RADAR", "NAVIRE"], "x": ["une liste", "let"], "y": ["un tuple", "const"]},
    "es": {"thing": ["mi instancia de Nextcloud", "un proxy inverso", "mi servidor casero", "una base de datos"],
           "task": ["borre los archivos de más de 30 días", "lea un archivo CSV", "revise el espacio en disco", "renombre fotos"],
           "task2": ["abrir un puerto", "definir una variable de entorno", "borrar imágenes viejas", "deshacer un commit"],
           "sql": ["encuentre los clientes sin pedidos", "calcule las ventas por mes", "borre los duplicados"],
           "topic": ["el otoño", "mi abuela", "el mar", "un zorro curioso"], "opinion": ["el teletrabajo", "los coches eléctricos", "las redes sociales"],
           "problem": ["el estrés en el trabajo", "un vecino ruidoso", "los nervios antes de un examen"], "occasion": ["la boda de mi hermana", "una jubilación"],
           "how": ["el sistema inmunitario", "la democracia", "una central nuclear"], "plan": ["unas vacaciones en Italia", "un cumpleaños infantil"],
           "msg": ["Otra vez llegas tarde.", "Mándame el archivo."], "country": ["Alemania", "Canadá", "Japón", "Chile"],
           "unit1": ["metros", "gramos", "minutos"], "unit2": ["kilómetros", "kilos", "horas"], "word2": ["mariposa", "ardilla", "queso"],
           "work": ["Don Quijote", "Cien años de soledad"], "event": ["cayó el muro de Berlín", "llegó el hombre a la Luna"], "animal": ["delfín", "pingüino"],
           "abbr": ["ONU", "ADN"], "word": ["PERRO", "RADAR", "AMOR"], "x": ["una lista", "let"], "y": ["una tupla", "const"]},
    "it": {"thing": ["Nextcloud", "un reverse proxy"], "task": ["cancella i file vecchi", "legge un file CSV"],
           "task2": ["aprire una porta", "annullare un commit"], "sql": ["trova i clienti senza ordini", "calcola le vendite per mese"],
           "topic": ["l'autunno", "il mare", "mia nonna"], "opinion": ["il lavoro da remoto", "le auto elettriche"], "problem": ["lo stress", "un collega difficile"],
           "plan": ["una vacanza in Grecia", "una festa a sorpresa"], "country": ["Germania", "Canada", "Giappone"], "work": ["la Divina Commedia", "I promessi sposi"],
           "word2": ["farfalla", "scoiattolo"]},
    "pt": {"thing": ["o Nextcloud", "um proxy reverso"], "task": ["apague arquivos antigos", "leia um arquivo CSV"],
           "task2": ["abrir uma porta", "desfazer um commit"], "sql": ["encontre clientes sem pedidos", "calcule as vendas por mês"],
           "topic": ["o outono", "o mar", "minha avó"], "opinion": ["o trabalho remoto", "os carros elétricos"], "problem": ["o estresse", "um colega difícil"],
           "plan": ["uma viagem ao Brasil", "uma festa surpresa"], "country": ["Alemanha", "Canadá", "Japão"], "work": ["Os Lusíadas", "Dom Casmurro"],
           "word2": ["borboleta", "esquilo"]},
    "zh": {"thing": ["Nextcloud", "反向代理", "家里的服务器", "数据库备份"], "task": ["删除30天前的日志", "读取CSV文件", "检查磁盘空间", "批量重命名照片"],
           "task2": ["开放一个端口", "设置环境变量", "删除旧镜像", "撤销一次提交"], "sql": ["找出没有订单的客户", "按月统计销售额", "删除重复记录"],
           "topic": ["秋天", "大海", "我的奶奶", "一只好奇的狐狸"], "opinion": ["远程办公", "电动汽车", "社交媒体"], "problem": ["工作压力", "吵闹的邻居", "考试焦虑"],
           "occasion": ["姐姐婚礼", "退休欢送会"], "how": ["免疫系统", "民主制度", "核电站"], "plan": ["去日本旅行", "孩子的生日会"],
           "country": ["德国", "加拿大", "智利", "埃及"], "word2": ["蝴蝶", "松鼠"], "work": ["红楼梦", "西游记"], "abbr": ["GDP", "NBA"], "animal": ["鲸鱼", "企鹅"],
           "x": ["列表", "let"], "y": ["元组", "const"]},
}
_CODE = ["for i in range(10)\n    print(i)", "SELECT * FROM users WHERE id = ' + id", "const x = await fetch(url).json()",
         "#!/bin/bash\nfor f in *.log; do rm $f; done", "docker run -p 80:80 -v data:/data nginx"]
_ERRORS = ["permission denied", "port is already allocated", "ModuleNotFoundError", "connection refused", "syntax error near unexpected token"]

LANGUAGES = tuple(_BANK)


def intl_prompt(rng: random.Random, label: str, language: str | None = None) -> str:
    """A prompt of `label` in one of the languages (random when not given)."""
    language = language or pick(rng, LANGUAGES)
    template = pick(rng, _BANK[language][label])
    slots = _SLOTS[language]
    values = {key: pick(rng, words) for key, words in slots.items()}
    values |= {"tool": pick(rng, _TOOLS), "a": str(rng.randint(2, 9)), "b": str(rng.randint(10, 52)), "c": str(rng.randint(2, 9)),
               "code": pick(rng, _CODE), "err": pick(rng, _ERRORS)}
    return template.format_map(_Missing(values))


class _Missing(dict):  # type: ignore[type-arg]
    """format_map helper: a slot a language does not define gets a neutral word."""

    def __missing__(self, key: str) -> str:
        return {"word": "RADAR", "x": "A", "y": "B", "abbr": "UNESCO", "animal": "whale", "occasion": "party", "how": "internet",
                "msg": "ok", "unit1": "m", "unit2": "km", "event": "1989", "work": "Hamlet"}.get(key, key)
