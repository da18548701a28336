"""Questions: compare the levels of one or two factors, each level tuned with the same budget in
its own study, the best of each retrained with the same seeds and scored on the test split."""

#: Study user attr of a question's own study: the design and the cell -> study map.
QUESTION_ATTR = "hpsearch_question"
#: Study user attr of a question's own study: its answer (``hpsearch answer --json``).
ANSWER_ATTR = "hpsearch_answer"
