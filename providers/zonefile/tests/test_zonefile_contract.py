"""The provider contract, run against zone files under tmp_path (one file, and a folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mxflip.testing.contract import ProviderContract, ZoneListingContract
from mxflip_zonefile import ZoneFileProvider, ZoneFileSettings
from tests.support.bind import zone_text

ZONE = "contract.test."


class TestZoneFileContract(ProviderContract, ZoneListingContract):
    @pytest.fixture(params=["file", "directory"])
    def provider(self, request: pytest.FixtureRequest, tmp_path: Path) -> ZoneFileProvider:
        (tmp_path / "contract.test.zone").write_text(zone_text(ZONE))
        if request.param == "file":
            settings = ZoneFileSettings.model_validate(
                {"file": "contract.test.zone"}, context={"base_dir": tmp_path}
            )
        else:
            settings = ZoneFileSettings(directory=tmp_path)
        return ZoneFileProvider.from_settings("files", settings)

    @pytest.fixture
    def zone(self) -> str:
        return ZONE
