"""Personal spam filters (embedded, no download): one binary task per user, CS330 lecture 2."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtl_cli.errors import UserError
from mtl_cli.families.task_data import MultiTaskData, TaskSplit


def personal_spam_tasks(
    users: int,
    vocab_size: int,
    topics: int,
    mail_length: float,
    preference_strength: float,
    user_shift: float,
    mails_per_user: Sequence[int],
    data_scale: float,
    val_per_user: int,
    test_per_user: int,
    data_seed: int,
    data: dict,
) -> MultiTaskData:
    """Task `user<i>`: is a mail spam for user i (generative model: mtl_cli.data.personal_spam).

    Users are ordered by training-set size (user0 has the least). `info` records each user's
    training size and `global_rule_accuracy`: the test accuracy of a perfect global spam filter
    (the shared labelling rule, no per-user part) on that user's test mails.
    """
    from mtl_cli.data.personal_spam import make_personal_spam

    low_high = [int(v) for v in mails_per_user]
    if len(low_high) != 2:
        raise UserError(f"task.mails_per_user: expected [min, max], got {list(mails_per_user)}")
    try:
        corpus = make_personal_spam(
            users=int(users), vocab_size=int(vocab_size), topics=int(topics),
            mail_length=float(mail_length), preference_strength=float(preference_strength),
            user_shift=float(user_shift), mails_per_user=(low_high[0], low_high[1]),
            data_scale=float(data_scale), val_per_user=int(val_per_user),
            test_per_user=int(test_per_user), seed=int(data_seed),
        )  # fmt: skip
    except ValueError as exc:
        raise UserError(f"task.{exc}") from None
    names = [f"user{i}" for i in range(int(users))]
    splits = {
        split: [TaskSplit(torch.from_numpy(m["x"]), torch.from_numpy(m["y"])) for m in mails]
        for split, mails in corpus["splits"].items()
    }
    agreement = [float((m["y"] == m["global_y"]).mean()) for m in corpus["splits"]["test"]]
    return MultiTaskData(
        task_names=names,
        outputs=[2] * int(users),
        input_shape=(int(vocab_size),),
        splits=splits,
        info={
            "train_mails": dict(zip(names, corpus["sizes"].tolist(), strict=True)),
            "global_rule_accuracy": dict(zip(names, agreement, strict=True)),
        },
    )
