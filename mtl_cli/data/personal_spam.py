"""Personal spam filters (CS330 lecture 2's example): a seeded synthetic mail corpus, one task per user.

The generative model is a Naive-Bayes-style topic model (McCallum & Nigam 1998, "A comparison of
event models for Naive Bayes text classification": a mail is a multinomial draw of words). With
V words, T topics and U users, all drawn from `seed`:

World (shared by every user):
  - topic word distributions  phi_k ~ Dirichlet(TOPIC_CONCENTRATION * 1_V),  k = 0..T-1;
  - a background word distribution  b ~ Dirichlet(1_V)  (words common to every mail);
  - the global notion of spam: topics 0..floor(T/2)-1 are spam (g_k = 1), the others ham
    (g_k = 0). The global spam (ham) word distribution is the mixture of the spam (ham) topics.

User i (s = user_shift, p = preference_strength):
  - topic mix      theta_i = (1 - s) * uniform_T + s * Dirichlet(1_T)       (what i receives);
  - word emphasis  e_iv = exp(s * n_iv), n_iv ~ N(0, 1); user i's topics and background are
    phi_ik ∝ phi_k * e_i and b_i ∝ b * e_i. With s = 0 every user has the same p_i(x);
  - preferences: round(p * T) topics F_i drawn uniformly without replacement whose label user i
    flips (a user who wants the newsletters or marketing that most users call spam):
    label_i(k) = g_k XOR [k in F_i]. With p = 0 every user has the global labelling rule;
  - data: n_i training mails, geometrically spaced from mails_per_user[0] to mails_per_user[1]
    (times data_scale, rounded, at least 1), in increasing order of i: user 0 has the least data.

Mail of user i: topic z ~ Categorical(theta_i); length L = 1 + Poisson(mail_length - 1);
word counts c ~ Multinomial(L, (1 - BACKGROUND) * phi_iz + BACKGROUND * b_i); label
y = label_i(z) (1 = spam). Features: x = log1p(c), a float32 vector of length V.

Validation and test mails are drawn from a random stream of their own, so they do not change
with data_scale or mails_per_user (every data size is scored on the same test mails).
"""

from __future__ import annotations

import numpy as np

TOPIC_CONCENTRATION = 0.05  # sparse topics: each puts most of its mass on a few dozen words
BACKGROUND = 0.5  # fraction of a mail's words drawn from the background distribution


def check_options(
    users: int,
    vocab_size: int,
    topics: int,
    mail_length: float,
    preference_strength: float,
    user_shift: float,
    mails_per_user: tuple[int, int],
    data_scale: float,
) -> None:
    """Raise ValueError naming the option when a value is outside what the model allows."""
    if users < 1:
        raise ValueError(f"users: {users} is below the minimum 1")
    if vocab_size < 2:
        raise ValueError(f"vocab_size: {vocab_size} is below the minimum 2")
    if topics < 2:
        raise ValueError(f"topics: {topics} is below the minimum 2 (one spam, one ham)")
    if not mail_length >= 1:
        raise ValueError(f"mail_length: {mail_length} is below the minimum 1")
    if not 0.0 <= preference_strength <= 1.0:
        raise ValueError(f"preference_strength: {preference_strength} is outside [0, 1]")
    if not 0.0 <= user_shift <= 1.0:
        raise ValueError(f"user_shift: {user_shift} is outside [0, 1]")
    low, high = mails_per_user
    if not 1 <= low <= high:
        raise ValueError(
            f"mails_per_user: expected [min, max] with 1 <= min <= max, got {[low, high]}"
        )
    if not data_scale > 0:
        raise ValueError(f"data_scale: {data_scale} must be greater than 0")


def train_sizes(users: int, mails_per_user: tuple[int, int], data_scale: float) -> np.ndarray:
    """Training mails per user: geometric spacing from min to max, times data_scale, >= 1."""
    low, high = (float(v) for v in mails_per_user)
    spaced = np.geomspace(low, high, users) if users > 1 else np.array([low])
    return np.maximum(1, np.rint(spaced * data_scale)).astype(np.int64)


def _normalise(p: np.ndarray) -> np.ndarray:
    return p / p.sum(axis=-1, keepdims=True)


def make_world(
    users: int,
    vocab_size: int,
    topics: int,
    preference_strength: float,
    user_shift: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """The latent parameters: global topics and labels, and each user's mix, words and labels."""
    world_ss, user_ss = np.random.SeedSequence([seed, 0]).spawn(2)
    rng = np.random.default_rng(world_ss)
    phi = rng.dirichlet(np.full(vocab_size, TOPIC_CONCENTRATION), size=topics)  # [T, V]
    background = rng.dirichlet(np.ones(vocab_size))  # [V]
    global_labels = (np.arange(topics) < topics // 2).astype(np.int64)  # 1 = spam

    rng = np.random.default_rng(user_ss)
    flips = int(round(preference_strength * topics))
    topic_mix = np.empty((users, topics))
    user_phi = np.empty((users, topics, vocab_size))
    user_background = np.empty((users, vocab_size))
    labels = np.empty((users, topics), dtype=np.int64)
    for i in range(users):
        # every draw happens for every setting, so user i's draws do not depend on s or p
        mix, emphasis = rng.dirichlet(np.ones(topics)), rng.standard_normal(vocab_size)
        flipped = rng.permutation(topics)[:flips]
        topic_mix[i] = (1.0 - user_shift) / topics + user_shift * mix
        weights = np.exp(user_shift * emphasis)
        user_phi[i] = _normalise(phi * weights)
        user_background[i] = _normalise(background * weights)
        labels[i] = global_labels
        labels[i, flipped] ^= 1
    word_dist = (1 - BACKGROUND) * np.einsum("ut,utv->uv", topic_mix, user_phi)
    word_dist += BACKGROUND * user_background
    return {
        "topic_words": phi,
        "global_labels": global_labels,
        "topic_mix": topic_mix,
        "user_topic_words": user_phi,
        "user_background": user_background,
        "labels": labels,
        "word_dist": word_dist,  # [U, V]: user i's expected word frequencies (its p_i(word))
    }


def draw_mails(
    world: dict[str, np.ndarray],
    user: int,
    count: int,
    mail_length: float,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """`count` mails of `user`: log1p word counts x [count, V], labels y, latent topics z."""
    topics = world["topic_mix"].shape[1]
    z = rng.choice(topics, size=count, p=world["topic_mix"][user])
    lengths = 1 + rng.poisson(mail_length - 1.0, size=count)
    words = (1 - BACKGROUND) * world["user_topic_words"][user][z]
    words += BACKGROUND * world["user_background"][user]
    counts = rng.multinomial(lengths, words / words.sum(axis=1, keepdims=True))
    return {
        "x": np.log1p(counts).astype(np.float32),
        "y": world["labels"][user][z],
        "z": z,
        "global_y": world["global_labels"][z],
    }


def make_personal_spam(
    users: int = 8,
    vocab_size: int = 500,
    topics: int = 20,
    mail_length: float = 20.0,
    preference_strength: float = 0.1,
    user_shift: float = 0.3,
    mails_per_user: tuple[int, int] = (10, 400),
    data_scale: float = 1.0,
    val_per_user: int = 100,
    test_per_user: int = 500,
    seed: int = 0,
) -> dict:
    """The corpus: {"world": latent parameters, "splits": {split: [per-user mails]}, "sizes"}."""
    check_options(users, vocab_size, topics, mail_length, preference_strength, user_shift,
                  tuple(mails_per_user), data_scale)  # fmt: skip
    world = make_world(users, vocab_size, topics, preference_strength, user_shift, seed)
    sizes = train_sizes(users, tuple(mails_per_user), data_scale)
    eval_ss, train_ss = np.random.SeedSequence([seed, 1]).spawn(2)
    eval_rngs = [np.random.default_rng(s) for s in eval_ss.spawn(users)]
    train_rngs = [np.random.default_rng(s) for s in train_ss.spawn(users)]
    splits: dict[str, list[dict[str, np.ndarray]]] = {"train": [], "val": [], "test": []}
    for i in range(users):
        splits["val"].append(draw_mails(world, i, val_per_user, mail_length, eval_rngs[i]))
        splits["test"].append(draw_mails(world, i, test_per_user, mail_length, eval_rngs[i]))
        splits["train"].append(draw_mails(world, i, int(sizes[i]), mail_length, train_rngs[i]))
    return {"world": world, "splits": splits, "sizes": sizes}
