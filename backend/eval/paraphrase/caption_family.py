"""Which action families a free-text caption names (keywords and synonyms of everyday English), and whether a
caption names the family a clip is labelled with."""

from __future__ import annotations

import re

# "walks up a flight of stairs", "goes up a few steps" (not "walks up to the steps").
_UP_STAIRS = r"(walk(s|ed|ing)?|go(es|ing)?|went|step(s|ped|ping)?) up (?!to\b)(\w+ ){0,3}(stairs|steps|staircase)"
# "walks forward in a crouch", "moves forward in a crouched position", "walking in a low squat" (not "walks, then
# crouches down").
_WALK_CROUCHED = (
    r"(walk(s|ed|ing)?|mov(e|es|ed|ing)) ((?!then\b|and\b)\w+ ){0,2}(in a (low |deep )?)?"
    r"(crouch(ed|ing)?|squat(ting)?)"
)

# family -> regular expressions over the lower-cased caption (word boundaries added around each).
_PATTERNS: dict[str, tuple[str, ...]] = {
    "walk": (
        r"walk(s|ed|ing)?", r"stroll(s|ed|ing)?", r"ambl(e|es|ed|ing)", r"strid(e|es|ing)", r"strode",
        r"march(es|ed|ing)?", r"wander(s|ed|ing)?", r"saunter(s|ed|ing)?", r"trudg(e|es|ed|ing)",
        r"pac(e|es|ed|ing) (back and forth|around|up and down)", r"step(s|ped|ping)? (forward|ahead|along)",
        r"limp(s|ed|ing)?", r"stagger(s|ed|ing)?", r"shuffl(e|es|ed|ing)",
    ),
    "walk_backward": (
        r"(walk(s|ed|ing)?|step(s|ped|ping)?|mov(e|es|ed|ing)|go(es|ing)?|jog(s|ged|ging)?|run(s|ning)?) "
        r"(\w+ )?backwards?",
        r"backwards? (walk(s|ing)?|steps|paces)", r"back(s|ed|ing) up", r"back(s|ed|ing)? away",
        r"retreat(s|ed|ing)?", r"in reverse",
        # Bare "back" only after a count of steps ("takes a few steps back"): "steps back" / "a step back" is mostly a
        # single recoil step (or the wind-up of a throw or kick), not walking backwards for several steps, and
        # "walks back" usually means returning ("walks back to the start"); "comes back up" is not backing up.
        r"(several|a few|some|few|two|three|four|five|six|many|multiple|\d+) (\w+ )?(steps|paces) back",
    ),
    "sidestep": (
        r"side ?-?step(s|ped|ping)?", r"sideways", r"(step(s|ped|ping)?|shuffl(e|es|ed|ing)|mov(e|es|ed|ing)) "
        r"(\w+ )?to the (left|right|side)( side)?",
    ),
    "run": (
        r"run(s|ning)?", r"ran", r"jog(s|ged|ging)?", r"sprint(s|ed|ing)?", r"dash(es|ed|ing)?",
        r"rac(e|es|ed|ing)", r"gallop(s|ed|ing)?", r"rush(es|ed|ing)?",
    ),
    "turn": (
        r"turn(s|ed|ing)?", r"rotat(e|es|ed|ing)", r"pivot(s|ed|ing)?", r"fac(e|es|ed|ing) (the other way|back|"
        r"the opposite)", r"about-?face",
    ),
    "spin": (r"spin(s|ning)?", r"spun", r"twirl(s|ed|ing)?", r"pirouette(s)?", r"full circle", r"360"),
    "curve_walk": (
        r"curv(e|es|ed|ing)", r"arc", r"in a (\w+ )?circle", r"semi-?circles?",
        r"in circles", r"circl(es|ed|ing) (a|around|round)",
        r"veer(s|ed|ing)?",
    ),
    "crouch_walk": (
        _WALK_CROUCHED,
        r"sneak(s|ed|ing)?", r"snuck", r"creep(s|ing)?", r"crept", r"tiptoe(s|d|ing)?", r"stealth(y|ily)",
        r"crouch(es|ed|ing)? (walk|forward|along|ahead)",
        r"crouch(es|ed|ing)?( (?!then\b)\w+){0,2} walk(s|ed|ing)?",  # "crouch walking", "crouches low and walks"
        r"hunch(ed|ing)",
        r"(walk(s|ed|ing)?|mov(e|es|ed|ing)) (\w+ )?(bent|stooped) (low|over)",  # "walks forward bent low"
    ),
    "crawl": (r"crawl(s|ed|ing)?", r"on all fours", r"hands and knees"),
    "idle": (
        r"stand(s|ing)? still", r"idl(e|es|ing)", r"wait(s|ed|ing)?", r"stand(s|ing)? (in place|there|around)",
        r"does nothing", r"doing nothing", r"stays? (still|in place|put)", r"remains? (still|standing)",
        r"motionless", r"stand(s|ing)? (\w+ ){0,2}(arms|hands) (at|by) (his |her |their |its |the )?sides?",
    ),
    "wave": (r"wav(e|es|ed|ing)", r"waves? (hello|goodbye|bye)", r"bye-?bye"),
    "raise_arms": (
        r"(rais(e|es|ed|ing)|lift(s|ed|ing)?) (up )?(\w+ )?(\w+ )?(arms?|hands?)",
        r"(put(s|ting)?|hold(s|ing)?|stick(s|ing)?) (\w+ )?(\w+ )?(arms?|hands?) (up|high|in the air|overhead)",
        r"(arms?|hands?) (up|raised|in the air|overhead|above)", r"reach(es|ed|ing)? (up|high|overhead)",
    ),
    "kick": (r"kick(s|ed|ing)?",),
    "punch": (
        r"punch(es|ed|ing)?", r"jab(s|bed|bing)?", r"boxing", r"boxer", r"uppercut(s)?", r"hook(s)?",
        r"strik(e|es|ing)", r"struck",
    ),
    "throw": (r"throw(s|ing)?", r"threw", r"thrown", r"toss(es|ed|ing)?", r"hurl(s|ed|ing)?", r"pitch(es|ed|ing)"),
    "squat": (r"squat(s|ted|ting)?", r"crouch(es|ed|ing)? down", r"knee bends?", r"bend(s|ing)? (the |his |her |"
              r"their )?knees"),
    "sit": (r"sit(s|ting)?( down)?", r"sat", r"seat(s|ed|ing)?", r"takes? a seat"),
    "stand_up": (r"stand(s|ing)? (back )?up", r"stood up", r"gets? (back )?up", r"getting up", r"got (back )?up",
                 r"(ris(e|es|ing)|rose) (up|to|from)", r"(to|on) (his|her|their|its) feet",
                 r"push(es|ed|ing)? (\w+ )?up (from|off|out of) (the |a |his |her |their )?(chair|seat|bench|stool)"),
    "bow": (r"bow(s|ed|ing)?", r"bend(s|ing)? (forward|over|down) at the waist", r"curtsy|curtsies"),
    "jump": (r"jump(s|ed|ing)?", r"leap(s|ed|ing|t)?", r"bounds", r"bounding", r"bounc(e|es|ed|ing)",
             r"skip(s|ped|ping)?"),
    "hop": (r"hop(s|ped|ping)?", r"on one (foot|leg)"),  # not "hip hop": see _NOT_A_MENTION
    "climb": (r"climb(s|ed|ing)?", r"ascend(s|ed|ing)?", _UP_STAIRS, r"steps? up onto", r"upstairs"),
    "dance": (r"danc(e|es|ed|ing)", r"salsa", r"ballet", r"waltz(es|ed|ing)?", r"tango", r"groov(e|es|ing)"),
}  # fmt: skip

_COMPILED = {family: re.compile(r"\b(" + "|".join(p) + r")\b") for family, p in _PATTERNS.items()}
# "stands back up" is standing up, not backing up.
_BACK_UP_AFTER_RISING = re.compile(r"\b(stand(s|ing)?|stood|get(s|ting)?|got) back up\b")
_THROW_A_PUNCH = r"(throw(s|ing)?|threw|thrown) (a |some |several |two |three )?(\w+ )?(punch(es)?|jabs?|hooks?)"
# family -> phrases in which that family's words do not name it: a hit starting inside such a phrase is dropped.
_NOT_A_MENTION: dict[str, re.Pattern[str]] = {
    family: re.compile(r"\b(" + "|".join(p) + r")\b")
    for family, p in {
        "throw": (_THROW_A_PUNCH,),  # "throws a punch" is a punch
        "walk": (_UP_STAIRS,),  # "walks up the stairs" is climbing
        "squat": (_WALK_CROUCHED,),  # "walks in a low squat" is crouch-walking
        "crouch_walk": (r"(creep(s|ing)?|crept)( \w+)? on (all fours|(\w+ )?hands)",),  # is crawling
        # "raises a hand and waves" is a wave
        "raise_arms": (
            r"(rais(e|es|ed|ing)|lift(s|ed|ing)?) (up )?(\w+ )?(\w+ )?(arms?|hands?) (and|to) "
            r"wav(e|es|ed|ing)",
        ),
        # "spins in a full circle", "turns all the way around in a full circle" (not "turns and walks in a circle")
        "curve_walk": (
            r"(spin(s|ning)?|spun|twirl(s|ed|ing)?|turn(s|ed|ing)?|rotat(e|es|ed|ing)|pivot(s|ed|ing)?)"
            r"( (?!and\b|then\b)\w+){0,4} in a (full )?circle",
        ),
        "sit": (r"from (a |the |his |her |their |its )?(sitting|seated|seat|chair)",),  # "stands up from sitting"
        "hop": (r"hip[ -]hop",),
    }.items()
}
CAPTION_FAMILIES = tuple(_PATTERNS)

# A clip labelled with the key passes when its caption names any of these families.
ACCEPTED: dict[str, frozenset[str]] = {
    "walk": frozenset({"walk", "walk_backward", "sidestep", "curve_walk", "crouch_walk"}),
    "walk_backward": frozenset({"walk_backward"}),
    "sidestep": frozenset({"sidestep"}),
    "run": frozenset({"run"}),
    "turn": frozenset({"turn", "spin"}),
    "spin": frozenset({"spin", "turn"}),
    "curve_walk": frozenset({"curve_walk", "turn"}),
    "crouch_walk": frozenset({"crouch_walk"}),
    "crawl": frozenset({"crawl"}),
    "idle": frozenset({"idle"}),
    "wave": frozenset({"wave"}),
    "raise_arms": frozenset({"raise_arms"}),
    "kick": frozenset({"kick"}),
    "punch": frozenset({"punch"}),
    "throw": frozenset({"throw"}),
    "squat": frozenset({"squat"}),
    "sit": frozenset({"sit"}),
    "stand_up": frozenset({"stand_up"}),
    "bow": frozenset({"bow"}),
    "jump": frozenset({"jump", "hop"}),
    "hop": frozenset({"hop", "jump"}),
    "climb": frozenset({"climb"}),
    "dance": frozenset({"dance", "spin"}),
}
# The gait distinction is scored: a walking clip must not be called running and the other way round.
EXCLUDED: dict[str, frozenset[str]] = {
    "walk": frozenset({"run"}),
    "walk_backward": frozenset({"run"}),
    "run": frozenset({"walk", "idle"}),
}


def caption_families(caption: str) -> list[str]:
    """The families a caption names, in the order of their first mention ("throws a punch" is a punch)."""
    text = " ".join(re.sub(r"[^a-z0-9' -]+", " ", caption.lower()).split())
    text = _BACK_UP_AFTER_RISING.sub(r"\1 up", text)
    found: list[tuple[int, str]] = []
    for family, pattern in _COMPILED.items():
        spans = [m.span() for m in _NOT_A_MENTION[family].finditer(text)] if family in _NOT_A_MENTION else []
        hits = [m for m in pattern.finditer(text) if not any(a <= m.start() < b for a, b in spans)]
        if hits:
            found.append((hits[0].start(), family))
    return [family for _, family in sorted(found)]


def caption_names_family(caption: str, family: str) -> bool:
    """True when `caption` names `family` (or an accepted near family) and no excluded one (walk vs run)."""
    if family not in ACCEPTED:
        raise ValueError(f"family: {family!r} is not one of {', '.join(ACCEPTED)}")
    named = set(caption_families(caption))
    return bool(named & ACCEPTED[family]) and not named & EXCLUDED.get(family, frozenset())
