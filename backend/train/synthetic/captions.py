"""Varied English captions for synthetic motions, and HumanML3D-style `word/POS` tokens.

Every phrase is written from the motion's label, so side, direction, count and pace words always agree with
the motion: left/right are the character's own sides (left = +X at rest), a left turn is counter-clockwise
seen from above. Captions vary the subject ("a person", "someone", "she", ...), the tense (present, present
progressive, past, imperative, bare gerund), synonyms, word order, connectors between actions and length.
"""

from __future__ import annotations

import re

import numpy as np

Clause = tuple[str, str]  # (verb lemma, rest of the clause; may hold {pos} / {obj} / {self})
Phrase = tuple[Clause, ...]  # clauses joined with "and"

SUBJECTS: tuple[tuple[str, str], ...] = (
    ("a person", "n"),
    ("a person", "n"),
    ("someone", "n"),
    ("the person", "n"),
    ("a man", "m"),
    ("a woman", "f"),
    ("the man", "m"),
    ("the woman", "f"),
    ("he", "m"),
    ("she", "f"),
    ("the figure", "i"),
    ("a figure", "i"),
    ("a human", "n"),
    ("this person", "n"),
    ("a guy", "m"),
    ("the character", "i"),
)
PRONOUNS = {  # possessive, object, reflexive
    "n": ("their", "them", "themselves"),
    "m": ("his", "him", "himself"),
    "f": ("her", "her", "herself"),
    "i": ("its", "it", "itself"),
    "you": ("your", "you", "yourself"),
}

_IRREGULAR = {  # lemma: (3rd person, past, -ing)
    "run": ("runs", "ran", "running"),
    "sit": ("sits", "sat", "sitting"),
    "stand": ("stands", "stood", "standing"),
    "spin": ("spins", "spun", "spinning"),
    "get": ("gets", "got", "getting"),
    "take": ("takes", "took", "taking"),
    "do": ("does", "did", "doing"),
    "make": ("makes", "made", "making"),
    "go": ("goes", "went", "going"),
    "leap": ("leaps", "leapt", "leaping"),
    "hold": ("holds", "held", "holding"),
    "step": ("steps", "stepped", "stepping"),
    "sidestep": ("sidesteps", "sidestepped", "sidestepping"),
    "jog": ("jogs", "jogged", "jogging"),
    "hop": ("hops", "hopped", "hopping"),
    "squat": ("squats", "squatted", "squatting"),
    "put": ("puts", "put", "putting"),
    "bend": ("bends", "bent", "bending"),
    "rise": ("rises", "rose", "rising"),
    "swing": ("swings", "swung", "swinging"),
    "stop": ("stops", "stopped", "stopping"),
    "sneak": ("sneaks", "snuck", "sneaking"),
    "creep": ("creeps", "crept", "creeping"),
    "pivot": ("pivots", "pivoted", "pivoting"),
    "throw": ("throws", "threw", "throwing"),
    "jab": ("jabs", "jabbed", "jabbing"),
    "wind": ("winds", "wound", "winding"),
    "come": ("comes", "came", "coming"),
    "strike": ("strikes", "struck", "striking"),
}


def conjugate(verb: str, form: str) -> str:
    """`verb` (a lemma) in form 's' (he walks), 'ed' (walked), 'ing' (walking) or 'base' (walk)."""
    if form == "base":
        return verb
    if verb in _IRREGULAR:
        return _IRREGULAR[verb][("s", "ed", "ing").index(form)]
    if form == "s":
        if verb.endswith(("s", "sh", "ch", "x", "z")):
            return verb + "es"
        if verb.endswith("y") and verb[-2] not in "aeiou":
            return verb[:-1] + "ies"
        return verb + "s"
    if form == "ed":
        if verb.endswith("e"):
            return verb + "d"
        if verb.endswith("y") and verb[-2] not in "aeiou":
            return verb[:-1] + "ied"
        return verb + "ed"
    if verb.endswith("e") and not verb.endswith("ee"):
        return verb[:-1] + "ing"
    return verb + "ing"


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


# ---------------------------------------------------------------------------------------------------------------
# Phrase banks per action (alternatives; each a tuple of clauses)

FORWARD = ("forward", "forwards", "ahead", "straight ahead", "straight forward", "forward in a straight line")
BACKWARD = ("backward", "backwards", "in reverse")
PACE_WORDS = {
    "slow": ("slowly", "at a slow pace", "leisurely", "unhurriedly", "at a relaxed pace"),
    "normal": ("", "", "", "at a normal pace", "at a steady pace", "at an even pace"),
    "fast": ("quickly", "fast", "briskly", "at a fast pace", "hurriedly", "rapidly", "at a quick pace"),
}
COUNT_WORDS = {1: ("", "once"), 2: ("twice", "two times"), 3: ("three times", "3 times")}
SQUAT_COUNT = {1: "a squat", 2: "two squats", 3: "three squats"}


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _side(rng, side: str) -> str:
    return _pick(rng, (f"to the {side}", f"to {{pos}} {side}", f"to the {side}", f"{side}"))


def _walk(rng, label: dict) -> list[Phrase]:
    direction, pace = label["direction"], label["pace"]
    adv = _pick(rng, PACE_WORDS[pace])
    if direction == "forward":
        d = _pick(rng, FORWARD)
        out = [
            (("walk", _join(d, adv)),),
            (("walk", _join(adv, d)),),
            (("move", _join(d, adv)),),
            (("walk", _join(d, adv)),),
            (("take", _join("a few steps", d, adv)),),
            (("go", _join(d, adv)),),
        ]
        if pace == "slow":
            out += [(("stroll", d),), (("amble", d),), (("walk", f"{d} slowly"),)]
        if pace == "fast":
            out += [(("hurry", d),), (("walk", f"{d} at a brisk pace"),), (("walk", f"quickly {d}"),)]
        return out
    if direction == "backward":
        d = _pick(rng, BACKWARD)
        slow = "slowly" if pace == "slow" else ""
        return [
            (("walk", _join(d, slow)),),
            (("step", d),),
            (("move", d),),
            (("back", "up"),),
            (("step", "back"),),
            (("take", "a few steps backward"),),
            (("walk", "backwards carefully"),),
            (("retreat", "backward"),),
        ]
    side = direction
    to = _side(rng, side)
    return [
        (("sidestep", to),),
        (("step", f"sideways to the {side}"),),
        (("walk", f"sideways to the {side}"),),
        (("shuffle", f"to the {side}"),),
        (("move", f"laterally to {{pos}} {side}"),),
        (("side-step", f"to the {side}"),),
        (("step", f"to the {side} a few times"),),
        (("sidestep", to),),
    ]


def _run(rng, label: dict) -> list[Phrase]:
    d = _pick(rng, FORWARD)
    if label["pace"] == "sprint":
        return _sprint(rng, d)
    if label["pace"] == "jog":
        return [
            (("jog", d),),
            (("jog", _join(d, _pick(rng, ("", "at a steady pace", "lightly")))),),
            (("run", f"{d} at a light pace"),),
            (("run", d),),
            (("go", f"for a short jog {d}"),),
        ]
    return [
        (("run", d),),
        (("run", f"{d} quickly"),),
        (("run", f"fast {d}"),),
        (("dash", d),),
        (("run", d),),
        (("sprint", d),) if label["speed"] >= 2.8 else (("run", f"{d} at speed"),),
    ]


def _angle_words(degrees: float) -> tuple[str, ...]:
    nominal = min((45, 90, 135, 180), key=lambda a: abs(a - degrees))
    return {
        45: ("slightly", "45 degrees", "a little", "about 45 degrees", "a bit"),
        90: ("90 degrees", "ninety degrees", "", "a quarter turn"),
        135: ("135 degrees", "sharply", "more than 90 degrees"),
        180: ("around", "180 degrees", "all the way around", "a half turn"),
    }[nominal]


def _turn(rng, label: dict) -> list[Phrase]:
    side = label["direction"]
    angle = _pick(rng, _angle_words(label["degrees"]))
    to = _side(rng, side)
    if angle in ("a quarter turn", "a half turn"):
        return [(("make", f"{angle} to the {side}"),), (("do", f"{angle} to {{pos}} {side}"),)]
    out = [
        (("turn", _join(angle, to)),),
        (("turn", f"{side}"),),
        (("turn", f"to {{pos}} {side}"),),
        (("rotate", _join(angle, f"to the {side}")),),
        (("pivot", f"to the {side}"),),
        (("turn", _join(angle, f"to the {side} in place")),),
        (("make", f"a {side} turn"),),
        (("turn", f"{side} on the spot"),),
        (("turn", "to face " + ("left" if side == "left" else "right")),),
    ]
    if label["degrees"] > 150:
        out += [(("turn", f"around to the {side}"),), (("turn", f"around to {{pos}} {side}"),)]
    return out


def _curve(rng, label: dict) -> list[Phrase]:
    side = label["direction"]
    if label.get("circle"):
        return [
            (("walk", f"in a circle to the {side}"),),
            (("walk", f"around in a full circle, turning {side}"),),
            (("walk", f"in a circle, curving to {{pos}} {side}"),),
            (("circle", f"around to the {side}"),),
        ]
    return [
        (("walk", f"in a curve to the {side}"),),
        (("walk", f"forward while turning {side}"),),
        (("walk", f"in an arc to the {side}"),),
        (("walk", f"forward, curving to the {side}"),),
        (("veer", f"{side} while walking"),),
        (("curve", f"to the {side} as {{pro}} walks"),),
        (("follow", f"a curved path to the {side}"),),
    ]


def _spin(rng, label: dict) -> list[Phrase]:
    side = label["direction"]
    clock = "counterclockwise" if side == "left" else "clockwise"
    out = [
        (("spin", "around"),),
        (("spin", f"around to the {side}"),),
        (("spin", f"in a full circle to the {side}"),),
        (("turn", f"all the way around to the {side}"),),
        (("spin", f"around {clock}"),),
        (("twirl", "around"),),
        (("do", f"a full spin to the {side}"),),
        (("spin", "around in place"),),
    ]
    if label["degrees"] >= 340:
        out.append((("turn", f"a full 360 degrees to the {side}"),))
    return out


def _crouch_walk(rng, label: dict) -> list[Phrase]:
    d = _pick(rng, ("forward", "ahead", "forwards"))
    return [
        (("walk", f"{d} in a crouch"),),
        (("sneak", f"{d} while crouching"),),
        (("creep", f"{d} in a low crouch"),),
        (("crouch", "down"), ("walk", f"{d} slowly")),
        (("move", f"{d} crouched low"),),
        (("walk", f"{d} hunched over"),),
        (("walk", f"{d} bent low, slowly"),),
    ]


def _jump(rng, label: dict) -> list[Phrase]:
    count = label["count"]
    times = _pick(rng, COUNT_WORDS[count])
    if label["direction"] == "forward":
        out = [
            (("jump", _join("forward", times)),),
            (("leap", _join("forward", times)),),
            (("jump", _join("ahead", times)),),
            (("jump", _join("forward with both feet", times)),),
            (("hop", _join("forward", times)),),
        ]
        if count == 1:
            out += [(("do", "a long jump forward"),), (("jump", "a short distance forward"),)]
        return out
    out = [
        (("jump", _join("in place", times)),),
        (("jump", _join("up", times)),),
        (("jump", _join("straight up", times)),),
        (("jump", _join("on the spot", times)),),
    ]
    out += [(("jump", "up and down"),), (("hop", "up and down"),)] if count > 1 else [(("do", "a vertical jump"),)]
    return out


def _squat(rng, label: dict) -> list[Phrase]:
    count = label["count"]
    times = _pick(rng, COUNT_WORDS[count])
    return [
        (("squat", _join("down", times)),),
        (("do", SQUAT_COUNT[count]),),
        (("squat", "down"), ("stand", "back up")) if count == 1 else (("squat", f"down and up {times}"),),
        (("bend", "{pos} knees into a deep squat"),) if count == 1 else (("do", f"squats, {times}"),),
        (("lower", "{self} into a squat"), ("rise", "again")) if count == 1 else (("squat", times),),
        (("perform", SQUAT_COUNT[count]),),
    ]


def _sit(rng, label: dict) -> list[Phrase]:
    return [
        (("sit", "down"),),
        (("sit", "down on a chair"),),
        (("take", "a seat"),),
        (("lower", "{self} into a chair"),),
        (("sit", "down on something behind {obj}"),),
        (("sit", "down slowly"),),
    ]


def _stand(rng, label: dict) -> list[Phrase]:
    return [
        (("stand", "up"),),
        (("get", "up from a chair"),),
        (("rise", "from a seated position"),),
        (("stand", "up from sitting"),),
        (("get", "up"),),
        (("stand", "back up"),),
    ]


def _hand_words(rng, hand: str, kind: str = "hand") -> str:
    if hand == "both":
        return _pick(rng, (f"both {kind}s", f"{{pos}} {kind}s", f"both {kind}s"))
    return _pick(rng, (f"{{pos}} {hand} {kind}", f"the {hand} {kind}", f"{{pos}} {hand} {kind}"))


def _limb_words(rng, side: str, limb: str, other_word: str) -> str:
    """One side's limb in one of four wordings: "{pos} left leg", "the left leg", "{pos} left foot", "the left foot"."""
    words = (f"{{pos}} {side} {limb}", f"the {side} {limb}", f"{{pos}} {side} {other_word}", f"the {side} {other_word}")
    return _pick(rng, words)


def _wave(rng, label: dict) -> list[Phrase]:
    hand = label["hand"]
    words, arm = _hand_words(rng, hand), _hand_words(rng, hand, "arm")
    out = [
        (("wave", f"with {words}"),),
        (("wave", words),),
        (("wave", f"hello with {words}"),),
        (("wave", f"goodbye with {words}"),),
        (("raise", words), ("wave", "")),
        (("wave", arm + " above {pos} head") if hand == "both" else ("wave", f"{arm} in the air"),),
        (("greet", f"someone by waving {words}"),),
    ]
    if hand != "both":
        out.append((("wave", f"with {{pos}} {hand} hand raised"),))
    return out


def _raise(rng, label: dict) -> list[Phrase]:
    hand, style = label["hand"], label["style"]
    arm = _hand_words(rng, hand, "arm")
    hands = _hand_words(rng, hand)
    it = "them" if hand == "both" else "it"
    if style == "up":
        out = [
            (("raise", f"{arm} above {{pos}} head"),),
            (("lift", f"{arm} up high"),),
            (("reach", f"up with {arm}"),),
            (("put", f"{hands} up in the air"),),
            (("raise", f"{arm} straight up"), ("lower", f"{it} again")),
        ]
    elif style == "forward":
        out = [
            (("raise", f"{arm} in front of {{obj}}"),),
            (("hold", f"{arm} out in front"),),
            (("lift", f"{arm} forward to shoulder height"),),
            (("stretch", f"{arm} out forward"), ("lower", f"{it}")),
        ]
    else:
        out = [
            (("raise", f"{arm} out to the side" + ("s" if hand == "both" else "")),),
            (("lift", f"{arm} sideways to shoulder height"),),
            (("hold", f"{arm} out to the side" + ("s" if hand == "both" else "")),),
        ]
        if hand == "both":
            out.append((("spread", "{pos} arms out like a T"),))
    return out


def _kick(rng, label: dict) -> list[Phrase]:
    side = label["side"]
    leg = _limb_words(rng, side, "leg", "foot")
    return [
        (("kick", f"with {leg}"),),
        (("kick", f"forward with {leg}"),),
        (("kick", f"something with {leg}"),),
        (("do", f"a kick with {leg}"),),
        (("kick", f"{{pos}} {side} leg forward"),),
        (("kick", f"out with the {side} leg"),),
        (("perform", f"a {side}-footed kick"),),
        (("lift", f"{leg}"), ("kick", "forward")),
    ]


def _idle(rng, label: dict) -> list[Phrase]:
    return [
        (("stand", "still"),),
        (("stand", "in place"),),
        (("stand", "idle"),),
        (("wait", "in place"),),
        (("remain", "standing"),),
        (("stay", "still"),),
        (("stand", "around"),),
    ]


def _sprint(rng, d: str) -> list[Phrase]:
    return [
        (("sprint", d),),
        (("sprint", f"{d} at full speed"),),
        (("sprint", f"{d} as fast as {{pro}} can"),),
        (("run", f"{d} as fast as possible"),),
        (("dash", f"{d} at top speed"),),
        (("race", d),),
        (("sprint", f"{d} flat out"),),
        (("run", f"very fast {d}"),),
    ]


def _bow(rng, label: dict) -> list[Phrase]:
    degrees = label["degrees"]
    how = "deeply" if degrees >= 50 else ("slightly" if degrees < 40 else _pick(rng, ("", "politely", "respectfully")))
    out = [
        (("bow", _join(how, "from the waist")),),
        (("bow", _join(how, "and straighten up again")),),
        (("take", "a bow"),),
        (("make", "a " + ("deep" if degrees >= 50 else "small" if degrees < 40 else "polite") + " bow"),),
        (("bend", "forward at the waist in a bow"),),
        (("bow", _join(how, "to someone in front of {obj}")),),
        (("lean", "{pos} upper body forward in a bow"),),
        (("bow", "down"), ("come", "back up")),
    ]
    if degrees >= 50:
        out.append((("bow", "low"),))
    return out


def _punch(rng, label: dict) -> list[Phrase]:
    hand, count = label["hand"], label["count"]
    if hand == "both":
        return [
            (("punch", "with both fists, left and right"),),
            (("throw", "a few punches, alternating hands"),),
            (("punch", "the air with alternating fists"),),
            (("throw", "a combination of punches"),),
            (("punch", "forward, left then right"),),
            (("punch", "the air with both hands"),),
            (("throw", "punches with both fists"),),
        ]
    fist = _limb_words(rng, hand, "fist", "hand")
    several = {1: "a punch", 2: "two punches", 3: "three punches"}[count]
    return [
        (("punch", f"with {fist}"),),
        (("punch", f"forward with {fist}"),),
        (("throw", f"{several} with {fist}"),),
        (("jab", f"with {fist}"),),
        (("punch", f"straight ahead with {{pos}} {hand} fist"),),
        (("raise", "{pos} fists"), ("punch", f"with the {hand} one")),
        (("do", f"a {hand}-handed punch"),),
        (("strike", f"forward with {fist}"),),
    ]


def _throw(rng, label: dict) -> list[Phrase]:
    hand = label["hand"]
    arm = _limb_words(rng, hand, "arm", "hand")
    thing = _pick(rng, ("a ball", "something", "a stone", "an object", "a rock"))
    out = [
        (("throw", f"{thing} overhand with {arm}"),),
        (("throw", f"{thing} with {arm}"),),
        (("throw", f"{thing} forward with {arm}"),),
        (("toss", f"{thing} overhand with {arm}"),),
        (("hurl", f"{thing} with {arm}"),),
        (("throw", f"{thing} far with {arm}"),),
        (("wind", "up"), ("throw", f"{thing} with {arm}")),
        (("make", f"an overhand throw with {arm}"),),
    ]
    if label.get("step"):
        out.append((("step", "forward"), ("throw", f"{thing} with {arm}")))
    return out


def _hop(rng, label: dict) -> list[Phrase]:
    side, count = label["side"], label["count"]
    other = "right" if side == "left" else "left"
    foot = _limb_words(rng, side, "foot", "leg")
    if label["direction"] == "forward":
        d = _pick(rng, ("forward", "ahead", "forwards"))
        return [
            (("hop", f"{d} on {foot}"),),
            (("hop", f"{d} on one foot, the {side} one"),),
            (("hop", f"{d} on one leg"),),
            (("hop", f"on {foot}, moving {d}"),),
            (("lift", f"{{pos}} {other} foot"), ("hop", f"{d} on the {side} one")),
            (("make", f"a few hops {d} on {foot}"),),
        ]
    return [
        (("hop", f"on {foot}"),),
        (("hop", f"in place on {foot}"),),
        (("hop", f"up and down on {foot}"),),
        (("hop", f"on one foot, the {side} one"),),
        (("stand", f"on {foot}"), ("hop", "in place")),
        (("lift", f"{{pos}} {other} foot"), ("hop", f"on the {side} one")),
        (("hop", f"on the spot on {foot}"),),
        (("hop", _join(f"on one leg, the {side}", _pick(rng, COUNT_WORDS.get(count, ("",))))),),
    ]


def _crawl(rng, label: dict) -> list[Phrase]:
    d = _pick(rng, ("forward", "ahead", "forwards"))
    return [
        (("crawl", d),),
        (("crawl", f"{d} on {{pos}} hands and knees"),),
        (("get", "down on all fours"), ("crawl", d)),
        (("crawl", f"{d} on all fours"),),
        (("move", f"{d} on {{pos}} hands and knees"),),
        (("crawl", "along the floor"),),
        (("crawl", f"{d} like a baby"),),
        (("get", "down"), ("crawl", d), ("stand", "back up")),
    ]


def _climb(rng, label: dict) -> list[Phrase]:
    stairs = label["stairs"]
    return [
        (("climb", "a flight of stairs"),),
        (("climb", "up the stairs"),),
        (("walk", "up the stairs"),),
        (("climb", "up the steps"),),
        (("climb", f"up {stairs} steps"),),
        (("ascend", "a staircase"),),
        (("step", "up the stairs one at a time"),),
        (("climb", "the steps"),),
        (("walk", "up a staircase"),),
    ]


BANKS = {
    "walk": _walk,
    "run": _run,
    "turn": _turn,
    "curve_walk": _curve,
    "spin": _spin,
    "crouch_walk": _crouch_walk,
    "jump": _jump,
    "squat": _squat,
    "sit_down": _sit,
    "stand_up": _stand,
    "wave": _wave,
    "raise_arms": _raise,
    "kick": _kick,
    "idle": _idle,
    "bow": _bow,
    "punch": _punch,
    "throw": _throw,
    "hop": _hop,
    "crawl": _crawl,
    "climb": _climb,
}


# ---------------------------------------------------------------------------------------------------------------
# Sentences


def _render(phrase: Phrase, form: str, gender: str) -> str:
    pos, obj, refl = PRONOUNS[gender]
    pro = {"n": "they", "m": "he", "f": "she", "i": "it", "you": "you"}[gender]
    clauses = [_join(conjugate(v, form), rest) for v, rest in phrase]
    text = " and ".join(clauses)
    text = text.replace("{pos}", pos).replace("{obj}", obj).replace("{self}", refl)
    if "{pro}" in text:  # "... as he walks" (they walk / you walk)
        text = text.replace("{pro} walks", f"{pro} " + ("walk" if gender in ("n", "you") else "walks"))
        text = text.replace("{pro}", pro)
    return re.sub(r"\s+", " ", text).strip()


_PRESENT_JOIN = (", then ", " and then ", ", and then ", " then ", ", after that ", ". then ")
_PAST_JOIN = (", then ", " and then ", ", and then ", ", after which {subj_pro} ")


def _sentence(rng, phrases: list[Phrase], subject: str, gender: str, tense: str) -> str:
    if tense == "imperative":
        parts = [_render(p, "base", "you") for p in phrases]
        return _chain(rng, parts, (", then ", " then ", " and then ", ", and then "))
    if tense == "gerund":
        parts = [_render(p, "ing", gender if gender != "i" else "n") for p in phrases]
        return _chain(rng, parts, (", then ", " and then ", " before "))
    if tense == "progressive":
        parts = [_render(p, "ing", gender) for p in phrases]
        return f"{subject} is " + _chain(rng, parts, (", then ", " and then ", " before "))
    form = "ed" if tense == "past" else "s"
    parts = [_render(p, form, gender) for p in phrases]
    if len(parts) > 1 and rng.random() < 0.2 and tense == "present":
        # "after walking forward, a man turns left"
        first = _render(phrases[0], "ing", gender)
        return f"after {first}, {subject} " + _chain(rng, parts[1:], (", then ", " and then "))
    lead = "first " if len(parts) > 1 and rng.random() < 0.15 else ""
    joins = _PRESENT_JOIN if tense == "present" else (", then ", " and then ", ", and then ")
    return f"{subject} {lead}" + _chain(rng, parts, joins)


def _chain(rng, parts: list[str], joins: tuple[str, ...]) -> str:
    if len(parts) == 1:
        return parts[0]
    join = _pick(rng, joins)
    if join == " before ":  # the following clause is already an -ing form only in gerund/progressive tenses
        return parts[0] + " before " + " and then ".join(parts[1:])
    if len(parts) == 3 and rng.random() < 0.4:
        return f"{parts[0]}, {parts[1]}, and finally {parts[2]}"
    return join.join(parts)


def make_captions(labels: list[dict], rng: np.random.Generator, count: int = 6) -> list[str]:
    """`count` distinct captions (fewer if the banks run out) for the sequence of action labels."""
    captions: list[str] = []
    for _ in range(count * 6):
        subject, gender = _pick(rng, SUBJECTS)
        tense = _pick(
            rng, ("present",) * 8 + ("progressive", "progressive", "past", "imperative", "imperative", "gerund")
        )
        if tense in ("past", "imperative", "gerund") and rng.random() < 0.3:
            tense = "present"
        phrases = [_pick(rng, BANKS[label["action"]](rng, label)) for label in labels]
        text = _sentence(rng, phrases, subject, gender, tense)
        text = text.replace(". then ", ". then ")  # keep lower case after the period (HumanML3D style)
        if rng.random() < 0.5:
            text += "."
        if rng.random() < 0.25:
            text = text[0].upper() + text[1:]
        if text not in captions:
            captions.append(text)
        if len(captions) == count:
            break
    return captions


# ---------------------------------------------------------------------------------------------------------------
# Tokens (HumanML3D texts/*.txt: "caption#word/POS word/POS ...#0.0#0.0")

_VERBS = {
    *_IRREGULAR,
    *(
        "walk move go stroll amble hurry back retreat shuffle side-step jog dash sprint turn rotate pivot make face "
        "veer curve follow circle twirl crouch sneak creep jump leap hop bend lower perform wave raise greet lift "
        "reach stretch spread kick wait remain stay look bow punch climb crawl toss hurl race ascend lean straighten"
    ).split(),
}
_NOUNS = set(
    "person man woman figure human guy character hand arm leg foot head chair seat something someone circle curve "
    "arc path step squat jump kick spin turn pace position feet knee side shoulder height air front line distance "
    "spot place degree t stair staircase fist ball stone rock object waist body floor baby fours flight "
    "combination time".split()
)
_POS = {
    **dict.fromkeys("a an the this both".split(), "DET"),
    **dict.fromkeys("to with in on from into over above behind like by of for at as along".split(), "ADP"),
    **dict.fromkeys(
        "he she his her their its they them him it itself himself herself themselves you your".split(), "PRON"
    ),
    **dict.fromkeys(
        "forward forwards backward backwards slowly quickly fast briskly hurriedly rapidly leisurely unhurriedly "
        "then ahead straight up down around again back out sideways laterally away once twice finally first "
        "gradually slightly carefully lightly high all still idle counterclockwise clockwise after overhand deeply "
        "politely respectfully very far".split(),
        "ADV",
    ),
    **dict.fromkeys(
        "left right slow quick normal steady even relaxed full few short low deep long light brisk "
        "vertical curved seated sitting crouched hunched bent raised footed small polite upper flat alternating "
        "possible top handed".split(),
        "ADJ",
    ),
    **dict.fromkeys("two three ninety".split(), "NUM"),
    **dict.fromkeys("is can".split(), "AUX"),
}
_LEMMA = {form: lemma for lemma, forms in _IRREGULAR.items() for form in forms}
_LEMMA.update(
    {
        "feet": "foot",
        "hands": "hand",
        "arms": "arm",
        "legs": "leg",
        "steps": "step",
        "squats": "squat",
        "degrees": "degree",
        "knees": "knee",
        "sides": "side",
        "stairs": "stair",
        "fists": "fist",
        "punches": "punch",
        "bows": "bow",
    }
)


def _lemma(word: str) -> tuple[str, str]:
    if word in _POS:
        return word, _POS[word]
    if word in _LEMMA:
        lemma = _LEMMA[word]
        return lemma, "VERB" if lemma in _VERBS else "NOUN"
    if word in _NOUNS:
        return word, "NOUN"
    for lemma in _VERBS:
        if word in {lemma, conjugate(lemma, "s"), conjugate(lemma, "ed"), conjugate(lemma, "ing")}:
            return lemma, "VERB"
    return word, "OTHER"


def tokens(caption: str) -> str:
    """Space-separated `lemma/POS` tokens of the alphabetic words (verbs and plural nouns lemmatised).

    A small closed-vocabulary tagger for our own captions (the spaCy recipe of HumanML3D text_process.py
    is not a dependency); "left" stays "left", unknown words are tagged OTHER.
    """
    words = re.findall(r"[a-z]+", caption.lower())
    return " ".join("/".join(_lemma(w)) for w in words)
