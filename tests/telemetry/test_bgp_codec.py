"""Large-community metadata codec and the Edge-Metadata extension point (issue #3)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from telemetry.bgp.codec import (
    METRIC_IDS,
    CodecError,
    ComputeMetadata,
    EdgeMetadataCodec,
    LargeCommunityCodec,
    codec_by_name,
)

LC = LargeCommunityCodec()


def _attrs(args: list[str]) -> dict[str, list[list[int]]]:
    """What ExaBGP shows for the large communities the gobgp CLI arguments attach."""
    assert args[0] == "large-community"
    return {"large-community": [[int(x) for x in t.split(":")] for t in args[1].split(",")]}


def test_encode_gives_gobgp_arguments() -> None:
    md = ComputeMetadata(l2=8.5, l1={"compute_norm": 0.25}, l0={"cpu_pct": 12, "gpu_free": 2,
                                                                 "price_per_hour": 3.5},
                         period_s=5)
    assert LC.encode(md, asn=65001) == [
        "large-community", "65001:1:850,65001:2:250,65001:10:12,65001:12:2,65001:13:350,"
        "65001:17:5"]


def test_round_trip_of_every_metric_id() -> None:
    l0 = {m.key: m.max_raw / m.scale for m in METRIC_IDS
          if m.key not in ("l2", "period_s", "compute_norm", "communication_norm",
                           "service_norm")}
    md = ComputeMetadata(l2=10, l1={"compute_norm": 1, "communication_norm": 0.5,
                                    "service_norm": 0}, l0=l0, period_s=30)
    assert LC.decode(_attrs(LC.encode(md, asn=64512))) == md


@given(st.floats(0, 10), st.floats(0, 100), st.integers(1, 86400))
@example(0.125, 0.0, 1)  # a half step: 0.12 back, 0.005 away give or take a float ulp
def test_round_trip_within_scale_precision(l2: float, cpu: float, period: int) -> None:
    md = ComputeMetadata(l2=l2, l0={"cpu_pct": cpu}, period_s=period)
    back = LC.decode(_attrs(LC.encode(md, asn=65001)))
    assert back.l2 is not None and abs(back.l2 - l2) <= 0.005 + 1e-9
    assert abs(back.l0["cpu_pct"] - cpu) <= 0.5
    assert back.period_s == period


def test_unknown_id_and_out_of_range_refused_with_name() -> None:
    with pytest.raises(CodecError, match="unknown metric id 42"):
        LC.decode({"large-community": [[65001, 42, 1]]})
    with pytest.raises(CodecError, match="cpu_pct raw value 150 exceeds 100"):
        LC.decode({"large-community": [[65001, 10, 150]]})
    with pytest.raises(CodecError, match="l2=11"):
        LC.encode(ComputeMetadata(l2=11), asn=1)
    with pytest.raises(CodecError, match="no metric id"):
        LC.encode(ComputeMetadata(l0={"bogus": 1}), asn=1)
    with pytest.raises(CodecError, match=r"large-community\[0\]"):
        LC.decode({"large-community": [[1, 2]]})


def test_foreign_asn_and_policy_ids_ignored() -> None:
    only = LargeCommunityCodec(asn=65001)
    md = only.decode({"large-community": [[65002, 1, 500], [65001, 1, 700], [65001, 5000, 1]]})
    assert md.l2 == 7.0
    assert LC.decode({}).empty


def test_edge_metadata_extension_point_fails_loudly() -> None:
    with pytest.raises(CodecError, match="draft-ietf-idr-5g-edge-service-metadata"):
        EdgeMetadataCodec().decode({})
    with pytest.raises(CodecError, match="unknown metadata codec"):
        codec_by_name("nope")
    assert codec_by_name("large-community").name == "large-community"


class MetadataCodecContract:
    """The shared contract every ``MetadataCodec`` backend passes (STYLE: one suite per
    Protocol). A backend's test subclasses it and provides ``codec`` and ``to_attrs``
    (what ExaBGP would show for the encoded arguments)."""

    codec: LargeCommunityCodec

    def to_attrs(self, args: list[str]) -> dict[str, object]:
        raise NotImplementedError

    def test_round_trip(self) -> None:
        md = ComputeMetadata(l2=4.2, l1={"service_norm": 0.5}, l0={"cpu_pct": 42},
                             period_s=10)
        assert self.codec.decode(self.to_attrs(self.codec.encode(md))) == md

    def test_no_metadata_decodes_empty(self) -> None:
        assert self.codec.decode({}).empty

    def test_out_of_range_refused_on_encode(self) -> None:
        with pytest.raises(CodecError):
            self.codec.encode(ComputeMetadata(l0={"cpu_pct": 101}))


class TestLargeCommunityContract(MetadataCodecContract):
    codec = LargeCommunityCodec(asn=65001)

    def to_attrs(self, args: list[str]) -> dict[str, object]:
        return dict(_attrs(args))
