"""A deterministic directory of people: account id -> realistic name, company, title.

Profiles depend only on the account id, so every process (and every run) agrees on them
without storing anything, and an account keeps its name across meetings.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Final

from meetings_simulator.model import Person

_FIRST: Final = (
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemal",
    "Laura",
    "Mateo",
    "Nadia",
    "Oliver",
    "Priya",
    "Quentin",
    "Rosa",
    "Samuel",
    "Tanja",
    "Umar",
    "Valeria",
    "Wei",
    "Ximena",
    "Yusuf",
    "Zoe",
    "Chloé",
    "Søren",
    "Łukasz",
    "Aoife",
    "Björn",
    "Dmitri",
    "Fatima",
    "Giulia",
    "Hannah",
    "Ivan",
    "Julia",
    "Kofi",
)
_LAST: Final = (
    "Schmidt",
    "García",
    "Rossi",
    "Nguyen",
    "Müller",
    "Kowalski",
    "O'Brien",
    "Smith",
    "Tanaka",
    "Dubois",
    "Silva",
    "Jensen",
    "Novak",
    "Khan",
    "Fischer",
    "Martin",
    "Bauer",
    "Lindqvist",
    "Moreau",
    "Costa",
    "Yilmaz",
    "Ivanova",
    "Chen",
    "Papadopoulos",
    "Horvat",
    "Andersen",
    "Kim",
    "Becker",
    "Ferreira",
    "Walsh",
)
_COMPANY_A: Final = (
    "Nordic",
    "Blue",
    "Atlas",
    "Vertex",
    "Summit",
    "Harbor",
    "Apex",
    "Green",
    "Silver",
    "Iron",
    "Bright",
    "Polar",
    "Crescent",
    "Granite",
    "Meridian",
    "Orbit",
    "Pioneer",
)
_COMPANY_B: Final = (
    "Logistics",
    "Foods",
    "Analytics",
    "Energy",
    "Textiles",
    "Robotics",
    "Pharma",
    "Media",
    "Systems",
    "Travel",
    "Packaging",
    "Retail",
    "Finance",
    "Labs",
    "Mobility",
)
_SUFFIX: Final = ("GmbH", "Ltd", "S.A.", "Inc.", "AB", "B.V.", "S.r.l.", "LLC", "Oy", "plc")
_TITLES: Final = (
    "Head of Procurement",
    "Sales Manager",
    "CEO",
    "Buyer",
    "Marketing Director",
    "Business Development Manager",
    "CTO",
    "Category Manager",
    "Export Manager",
    "Purchasing Agent",
    "Founder",
    "Product Manager",
    "Key Account Manager",
    "COO",
)


@lru_cache(maxsize=262_144)
def person_for(account_id: int) -> Person:
    """The profile of ``account_id`` (the same in every process)."""
    rng = random.Random(account_id * 2_654_435_761 + 97)  # noqa: S311 - simulation, not crypto
    first = rng.choice(_FIRST)
    last = rng.choice(_LAST)
    company = f"{rng.choice(_COMPANY_A)} {rng.choice(_COMPANY_B)} {rng.choice(_SUFFIX)}"
    domain = company.split(" ")[0].lower() + "-" + company.split(" ")[1].lower()
    local = f"{first}.{last}".lower().replace("'", "")
    return Person(
        first_name=first,
        last_name=last,
        email=f"{local}.{account_id}@{domain}.example",
        company=company,
        job_title=rng.choice(_TITLES),
    )
