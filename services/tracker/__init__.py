"""The tracker stage: cluster updates into incidents, extract facts, merge them, emit change events."""
