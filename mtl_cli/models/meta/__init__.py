"""Meta-learners for N-way K-shot classification and few-shot regression (CS330 lecture 2 onwards).

Black-box: `MANN` (Santoro et al. 2016), `SNAIL` (Mishra et al. 2018); optimisation-based: `MAML`
(Finn et al. 2017; first-order and Meta-SGD, Li et al. 2017); non-parametric: `ProtoNet`
(Snell et al. 2017); the pretrained-on-all-tasks baseline `Pretrained` (Finn et al. 2017,
sec. 5.1). All share `MetaLearner.forward(support_x, support_y, query_x)`.
"""

from mtl_cli.models.meta.base import MetaLearner
from mtl_cli.models.meta.maml import MAML
from mtl_cli.models.meta.mann import MANN
from mtl_cli.models.meta.pretrained import Pretrained
from mtl_cli.models.meta.protonet import ProtoNet
from mtl_cli.models.meta.snail import SNAIL

__all__ = ["MAML", "MANN", "SNAIL", "MetaLearner", "Pretrained", "ProtoNet"]
