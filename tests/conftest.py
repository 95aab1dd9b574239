import pytest
import torch

#: Spatial ranks every op is tested in.
ND = (1, 2, 3)
#: Small, deliberately non-cubic spatial shapes per rank.
SHAPES = {1: (9,), 2: (7, 6), 3: (5, 4, 6)}

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
