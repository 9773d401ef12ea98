"""Build hook: a regular wheel carries the bundled maps inside the package (``foreman_tui/_bundled_maps``).
An editable install does not: it exposes ``foreman_tui`` alone and the demo reads ``maps/`` from the checkout."""

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class BundledMaps(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "standard":
            build_data["force_include"]["maps"] = "foreman_tui/_bundled_maps"
