"""Seeded English sentence generator with a broad, phonetically varied vocabulary.

All word lists were written for this project. Sentences are built from templates whose slots
draw from part-of-speech lists, so a few hundred words give many thousands of distinct sentences.
Only letters, spaces, commas, periods and question marks appear in the output (safe to pass to
any synthesiser's command line or Scheme string).
"""
from __future__ import annotations

import re

import numpy as np

NAMES = """
Ada Abel Alma Amos Anya Arlo Basil Bella Boris Carmen Cedric Chloe Clara Dexter Dora Edgar Elsa
Ethan Felix Fiona Gavin Greta Hazel Hugo Ingrid Isaac Ivy Jasper Joyce Jude Kendra Kofi Lena Leon
Lucia Magnus Maya Milo Nadia Nigel Nora Oscar Olive Pablo Petra Quentin Rosa Rufus Sonia Stellan
Tara Theo Ursula Vera Victor Wanda Wesley Xavier Yusuf Zara Zoe
""".split()

NOUNS = """
apple anchor arrow attic badge bakery balloon banjo barrel basket beacon beetle bicycle blanket
bottle bridge bucket buffalo cabin cactus camera candle canoe canyon carpet castle cellar chapel
cherry chimney clock cloud compass cookie cottage crayon cricket crystal cushion daisy desert
diamond dolphin doorway dragon drum eagle engine feather fence fiddle fountain garden garlic
giraffe glacier goblet grocer guitar hammer harbour harvest helmet hilltop honey island jacket
jungle kettle kitten ladder lantern lemon library lighthouse lizard magnet mango marble meadow
mirror monkey mountain museum needle notebook ocean orchard oyster paddle palace parrot pebble
pencil pepper piano pillow planet pocket pony puzzle quilt rabbit radio raven ribbon river rocket
saddle sailor sandwich scooter shadow shovel signal silver spider spoon squirrel stadium statue
stove suitcase sunflower tablet teapot thimble thunder tiger tomato tower tractor trumpet tulip
tunnel turtle umbrella valley velvet village violin volcano wagon walnut whistle window wizard
yacht yogurt zebra zipper
""".split()

ADJECTIVES = """
ancient bitter bold brave breezy bright brittle bumpy calm careful cheerful chilly clever cloudy
crooked crunchy curious dainty damp dusty eager early elegant empty fancy fierce fluffy foggy
fragile friendly frozen gentle gigantic glossy golden graceful grumpy hollow humble hungry icy
jolly juicy knotty lazy lively lonely loud lucky massive mellow misty modern muddy narrow nervous
noisy odd orange patient peaceful plain polite proud purple quiet rapid rough rusty salty sandy
scarlet shaggy shiny silent sleepy slippery smooth soft sparkling spicy steady sticky stormy
striped sturdy sunny swift tender thirsty tidy tiny tired velvety vivid wealthy weary wild windy
wise wooden woolly yellow young zealous
""".split()

VERBS_PAST = """
admired borrowed built buried carried carved chased cleaned collected cooked copied counted
covered decorated delivered discovered dropped dusted examined fetched filled fixed folded found
gathered grabbed guarded hid hugged inspected juggled kicked lifted locked measured mended moved
noticed opened packed painted photographed picked polished pulled pushed questioned raised
repaired returned rolled sold shared shook sketched sorted spotted squeezed stacked stirred
studied swapped tasted threw tossed traded unwrapped visited washed watched weighed whittled
wrapped
""".split()

VERBS_INTRANS = """
arrived danced drifted floated giggled glowed hummed hurried jogged laughed lingered marched
paused rested shivered slept smiled sneezed sparkled stumbled sang swam waited wandered whispered
wobbled yawned
""".split()

ADVERBS = """
briskly calmly carefully cheerfully clumsily eagerly gently gladly gracefully happily honestly
loudly merrily neatly nervously patiently politely proudly quickly quietly rarely roughly safely
slowly softly suddenly swiftly thoroughly warmly wearily
""".split()

PLACES = """
the station|the market|the beach|the bakery|the harbour|the library|the forest|the old mill|
the village square|the museum|the orchard|the quarry|the laboratory|the greenhouse|the airport|
the farmhouse|the workshop|the cathedral|the riverbank|the theatre|the zoo|the post office|
the playground|the ferry terminal|the observatory
""".replace("\n", "").split("|")

TIMES = """
this morning|last night|at noon|on Monday|on Tuesday|on Wednesday|on Thursday|on Friday|
on Saturday|on Sunday|in January|in April|in July|in October|after lunch|before dawn|at midnight|
yesterday|last summer|every winter|at half past nine|around sunset
""".replace("\n", "").split("|")

NUMBERS = """
two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty
sixty eighty ninety
""".split()

QUESTION_STARTS = ["why did", "when did", "how did", "where did"]

TEMPLATES = (
    "{Name} {verb} the {adj} {noun} {time}.",
    "The {adj} {noun} {verb_i} {adv} near {place}.",
    "{Name} and {name2} {verb} {num} {adj} {nouns} at {place}.",
    "{Qstart} {name} leave the {noun} beside the {noun2}?",
    "A {adj} {noun} {verb_i} {adv} while {name} {verb} the {noun2}.",
    "{Time}, {name} {adv} {verb} a {adj} {noun} and a {adj2} {noun2}.",
    "Nobody expected the {noun} from {place} to be so {adj}.",
    "{Name} {verb_i} {adv}, then {verb} the {adj} {noun} with a {noun2}.",
    "Please bring the {adj} {noun} to {place} {time}.",
    "There were {num} {adj} {nouns} and one {adj2} {noun2} in {place}.",
    "Is the {noun} really {adj}, or is it just {adj2}?",
    "{Name} said the {noun} {verb_i} {adv} {time}.",
)


def vocabulary() -> list[str]:
    """All distinct lower-case words the generator can emit, sorted."""
    words: set[str] = set()
    words.update(plural(n) for n in NOUNS)
    for group in (NAMES, NOUNS, ADJECTIVES, VERBS_PAST, VERBS_INTRANS, ADVERBS, NUMBERS):
        words.update(w.lower() for w in group)
    for group in (PLACES, TIMES, QUESTION_STARTS, TEMPLATES):
        for phrase in group:
            for token in phrase.replace("{", " ").replace("}", " ").split():
                token = token.strip(".,?").lower()
                if token.isalpha() and token not in {"name", "verb", "adj", "noun", "time", "place",
                                                     "adv", "num", "qstart", "nouns"}:
                    words.add(token)
    return sorted(words)


def plural(noun: str) -> str:
    """Regular English plural of `noun` ("cherry" -> "cherries", "box" -> "boxes")."""
    if noun.endswith("y") and noun[-2:-1] not in tuple("aeiou"):
        return noun[:-1] + "ies"
    if noun.endswith(("s", "sh", "ch", "x", "z", "o")):
        return noun + "es"
    return noun + "s"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def sentence(rng: np.random.Generator) -> str:
    """One random sentence drawn with `rng` (deterministic given the generator state)."""
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    name, name2 = pick(NAMES), pick(NAMES)
    time, noun = pick(TIMES), pick(NOUNS)
    slots = {
        "name": name, "Name": name, "name2": name2,
        "noun": noun, "noun2": pick(NOUNS), "nouns": plural(noun),
        "adj": pick(ADJECTIVES), "adj2": pick(ADJECTIVES),
        "verb": pick(VERBS_PAST), "verb_i": pick(VERBS_INTRANS), "adv": pick(ADVERBS),
        "place": pick(PLACES), "time": time, "Time": _cap(time), "num": pick(NUMBERS),
        "Qstart": _cap(pick(QUESTION_STARTS)),
    }
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", pick(TEMPLATES).format(**slots))


def sentences(seed: int, count: int) -> list[str]:
    """`count` sentences from a generator seeded with `seed`."""
    rng = np.random.default_rng(seed)
    return [sentence(rng) for _ in range(count)]
