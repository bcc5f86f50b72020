"""The paper's tables (igospp.studies.paper): keyed by registry names, rendered beside reproduced rows."""

import pytest

import igospp.studies.paper as paper
from igospp.methods import REGISTRY, display_name


def test_tables_are_keyed_by_registry_names():
    for name in ("TABLE1", "TABLE2", "TABLE3", "TABLE6", "TABLE7"):
        table = getattr(paper, name)
        assert set(paper.methods(table)) == {k[0] if isinstance(k, tuple) else k for k in table}, name
        assert name in paper.TABLE_MODELS
    assert paper.methods(paper.TABLE1) == ["gradcam", "ig", "rise", "mask", "igos", "igospp"]   # the registry's order
    with pytest.raises(ValueError, match=r"keys \['Mx', 'Mxy', 'My'\] that are not methods"):
        paper.methods(paper.TABLE5)                                             # the masks of iGOS++, not methods
    # Table 3 repeats Table 1's I-GOS and iGOS++ rows.
    assert all(paper.TABLE3[k] == paper.TABLE1[k] for k in paper.TABLE3 if k in paper.TABLE1)


def test_paper_tables_render_beside_reproduced_rows():
    row = dict(method="gradcam", resolution="7x7", n=1, deletion_mean=0.2, deletion_se=float("nan"),
               insertion_mean=0.5, insertion_se=float("nan"))
    last = paper.side_by_side([row], paper.TABLE2).splitlines()[-1]
    assert last == "| Grad-CAM | 7x7 | 1 | -- | 0.2000 | 0.1527 | -- | 0.5000 | 0.5938 |"    # matched by method alone
    row = dict(row, method="mask")
    assert paper.side_by_side([row], paper.TABLE2, coarse={7: 14}).splitlines()[-1].startswith("| Mask | 7x7 |")
    assert "| 0.1753 |" in paper.side_by_side([row], paper.TABLE2, coarse={7: 14})
    assert "| -- |" in paper.side_by_side([row], paper.TABLE2)
    # A method whose resolution is fixed is matched by method alone, the others by their resolution too.
    for name in paper.methods(paper.TABLE1):
        last = paper.side_by_side([dict(row, method=name, resolution="3x3")], paper.TABLE1).splitlines()[-1]
        assert last.startswith(f"| {display_name(name)} | 3x3 |")
        assert last.endswith("| -- |") == REGISTRY[name].takes_resolution, name
