"""An ontology of concepts (child -> parent) and the parent concept a caption is about (TOnICS batches).

The file: JSON ``{"boxer": "dog", "beagle": "dog", "dog": "animal"}``, or text lines ``child<TAB>parent``
(or ``child,parent``; blank lines and ``#`` comments skipped). Names are matched in captions as whole
words, case-folded, like the balancing entries (``filters.balance``). When a caption names several
children, the most specific wins: the deepest in the ontology, then the one with more words, then the
first in alphabetical order; its parent is the caption's concept. A row's ``label`` counts as named.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

from clipcurate.filters.balance import EntryMatcher, words


class OntologyError(ValueError):
    """The ontology file cannot be used; the message says why."""


@dataclass(frozen=True)
class Ontology:
    parents: dict  # child -> parent, names as space-joined words

    def depth(self, name: str) -> int:
        seen, d = set(), 0
        while name in self.parents and name not in seen:
            seen.add(name)
            name = self.parents[name]
            d += 1
        return d


def _name(text) -> str:
    return " ".join(words(text))


def load_ontology(path: str) -> Ontology:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise OntologyError(f"cannot read ontology {path!r}: {err.strerror or err}") from None
    pairs = []
    if path.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise OntologyError(f"ontology {path!r} is not valid JSON: {err}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise OntologyError(f"ontology {path!r} must be a JSON object of child -> parent names")
        pairs = list(data.items())
    else:
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            sep = "\t" if "\t" in line else ","
            parts = [p.strip() for p in line.split(sep)]
            if len(parts) != 2 or not all(parts):
                raise OntologyError(f"ontology {path!r} line {number}: expected child<TAB>parent, got {line[:100]!r}")
            pairs.append((parts[0], parts[1]))
    parents = {}
    for child, parent in pairs:
        child, parent = _name(child), _name(parent)
        if child and parent and child != parent:
            parents[child] = parent
    if not parents:
        raise OntologyError(f"ontology {path!r} holds no child -> parent entry")
    return Ontology(parents)


class ConceptMatcher:
    """caption (and label) -> the parent concept, or None when no child is named."""

    def __init__(self, ontology: Ontology):
        self.ontology = ontology
        self.matcher = EntryMatcher(frozenset(ontology.parents))
        self._rank = {c: (-ontology.depth(c), -c.count(" "), c) for c in ontology.parents}

    def parent_of(self, caption, label=None) -> Optional[str]:
        named = set(self.matcher.matches(caption))
        if label:
            name = _name(label)
            if name in self.ontology.parents:
                named.add(name)
        if not named:
            return None
        child = min(named, key=self._rank.__getitem__)
        return self.ontology.parents[child]
