"""Questions: compare the levels of one or two factors, each level tuned with the same budget in
its own study, the best of each retrained with the same seeds and scored on the test split.

The study user attrs of a question's own study (:data:`QUESTION_ATTR`: the design and the
cell -> study map; :data:`ANSWER_ATTR`: its answer, ``hpsearch answer --json``) are named in
:mod:`hpsearch.study.meta`, which the layers below the questions read."""

from hpsearch.study.meta import ANSWER_ATTR as ANSWER_ATTR
from hpsearch.study.meta import QUESTION_ATTR as QUESTION_ATTR
