"""One restriction interface for every common observation space: Discrete factors, Box coordinates,
Dict keys and the identity; names known per env id, the NoVel masks, bad input, VisibleObservation."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from rlimm.envs import (
    GRID_ID,
    CoordinateRestriction,
    FactoredRestriction,
    IdentityRestriction,
    KeyRestriction,
    PartitionRestriction,
    Restriction,
    ToroidalGridEnv,
    VisibleObservation,
    restriction_for,
)
from rlimm.envs.restrictions import DEFAULT_MAX_HIDDEN
from rlimm.errors import RlimmError


class StubEnv(gym.Env):
    """An environment that only has an observation space (and, optionally, a gymnasium id)."""

    def __init__(self, observation_space, env_id=None, seed=0):
        self.observation_space = observation_space
        self.action_space = spaces.Discrete(2)
        if env_id is not None:
            self.spec = EnvSpec(env_id)
        self._obs_rng = np.random.default_rng(seed)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self._obs_rng.integers(1 << 30)))
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def kinds(array):
    """The same batch as numpy and as a torch tensor."""
    return [np.asarray(array), torch.as_tensor(np.asarray(array))]


def as_numpy(x):
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# --------------------------------------------------------------------------- Discrete, factored

FACTORS = {"z": 2, "y": 3, "x": 4}  # obs = z·12 + y·4 + x
A = [23, 5]  # (z, y, x) = (1, 2, 3), (0, 1, 1)
B = [0, 20]  # (0, 0, 0), (1, 2, 0)


@pytest.mark.parametrize("layout", ["int", "float_column", "torch_float_column", "torch_long"])
def test_factored_visible_features_and_combine_by_hand(layout):
    r = FactoredRestriction(FACTORS, ["z", "x"])
    assert r.exact and isinstance(r, Restriction)
    assert r.visible_space == spaces.Discrete(8) and r.observation_space == spaces.Discrete(24)
    np.testing.assert_array_equal(r.discrete_features, [True, True])

    def batch(values):
        a = np.array(values)
        if layout == "int":
            return a
        if layout == "float_column":
            return a.astype(np.float32).reshape(-1, 1)
        if layout == "torch_float_column":
            return torch.tensor(a, dtype=torch.float32).reshape(-1, 1)
        return torch.tensor(a)

    a, b = batch(A), batch(B)
    # visible: context index z·4 + x, int64 (n,)
    visible = r.visible(a)
    np.testing.assert_array_equal(as_numpy(visible), [7, 1])
    assert as_numpy(visible).dtype == np.int64 and visible.shape == (2,)
    # features: the visible factors' values
    features = r.visible_features(a)
    assert type(features) is type(a) and features.shape == (2, 2)
    np.testing.assert_array_equal(as_numpy(features), [[1, 3], [0, 1]])
    # combine: z and x from a, y from b -> (1, 0, 3) = 15 and (0, 2, 1) = 9
    combined = r.combine(a, b)
    assert type(combined) is type(a) and combined.shape == a.shape and combined.dtype == a.dtype
    np.testing.assert_array_equal(as_numpy(combined).reshape(-1), [15, 9])
    np.testing.assert_array_equal(as_numpy(r.combine(b, a)).reshape(-1), [8, 16])  # (0,2,0), (1,1,0)
    # round trip and what each argument contributes
    np.testing.assert_array_equal(as_numpy(r.combine(a, a)), as_numpy(a))
    np.testing.assert_array_equal(as_numpy(r.visible(combined)), as_numpy(r.visible(a)))


def test_factored_combine_exhaustive_against_decoding():
    r = FactoredRestriction(FACTORS, ["y"])
    obs = np.arange(24)
    a, b = np.repeat(obs, 24), np.tile(obs, 24)
    za, ya, xa = np.unravel_index(a, (2, 3, 4))
    zb, yb, xb = np.unravel_index(b, (2, 3, 4))
    expected = np.ravel_multi_index((zb, ya, xb), (2, 3, 4))
    np.testing.assert_array_equal(r.combine(a, b), expected)
    t = torch.tensor(a, dtype=torch.float32).reshape(-1, 1)
    u = torch.tensor(b, dtype=torch.float32).reshape(-1, 1)
    np.testing.assert_array_equal(r.combine(t, u).reshape(-1).numpy(), expected)


def test_factored_exact_unless_hidden_part_exceeds_max_hidden():
    assert FactoredRestriction({"a": 100, "b": 64}, ["a"]).exact  # 64 hidden values
    big = FactoredRestriction({"a": 10, "b": 65}, ["a"])
    assert big.n_hidden == 65 and big.n_hidden > DEFAULT_MAX_HIDDEN
    assert not big.exact
    assert big.members.shape == (10, 65)  # tables kept anyway
    assert "sampled" in big.describe()
    assert FactoredRestriction({"a": 10, "b": 65}, ["a"], max_hidden=100).exact
    assert not FactoredRestriction(FACTORS, ["x"], max_hidden=2).exact


def test_enumerate_hidden_of_a_factored_restriction_numpy_and_torch():
    r = FactoredRestriction(FACTORS, ["z", "x"])  # 3 hidden values (y)
    for obs in kinds(np.array([[23.0], [5.0]], dtype=np.float32)):
        candidates, weights = r.enumerate_hidden(obs)
        assert type(candidates) is type(obs) and candidates.shape == (6, 1) and candidates.dtype == obs.dtype
        np.testing.assert_allclose(as_numpy(weights), np.full((2, 3), 1 / 3), rtol=1e-6)
        np.testing.assert_array_equal(as_numpy(candidates).reshape(2, 3), [[15, 19, 23], [1, 5, 9]])


def test_partition_without_factors_is_exact_but_cannot_combine():
    r = PartitionRestriction(np.array([0, 1, 0, 1, 0, 2]))
    assert r.exact and r.visible_space == spaces.Discrete(3)
    np.testing.assert_array_equal(r.visible_features(np.array([[4.0], [5.0]])), [[0.0], [2.0]])
    with pytest.raises(NotImplementedError, match="FactoredRestriction"):
        r.combine(np.array([0]), np.array([1]))


def test_partition_visible_on_torch_tensors():
    r = FactoredRestriction({"y": 11, "x": 11}, ["x"])
    obs = torch.tensor([[0.0], [12.0], [120.0]])
    context = r.visible(obs)
    assert context.dtype == torch.long
    np.testing.assert_array_equal(context.numpy(), [0, 1, 10])


# --------------------------------------------------------------------------- Box


def test_coordinate_restriction_by_hand_numpy_and_torch():
    space = spaces.Box(low=-10.0, high=10.0, shape=(4,), dtype=np.float32)
    r = CoordinateRestriction(space, [2, 0])
    assert not r.exact
    np.testing.assert_array_equal(r.indices, [0, 2])  # a set: increasing order
    assert r.visible_space == spaces.Box(-10.0, 10.0, (2,), np.float32)
    np.testing.assert_array_equal(r.discrete_features, [False, False])
    a = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.float32)
    b = np.array([[10, 20, 30, 40], [50, 60, 70, 80]], dtype=np.float32)
    for x, y in zip(kinds(a), kinds(b), strict=True):
        visible = r.visible(x)
        assert type(visible) is type(x)
        np.testing.assert_array_equal(as_numpy(visible), [[1, 3], [5, 7]])
        np.testing.assert_array_equal(as_numpy(r.visible_features(x)), [[1, 3], [5, 7]])
        combined = r.combine(x, y)
        assert type(combined) is type(x) and combined.dtype == x.dtype and combined.shape == x.shape
        np.testing.assert_array_equal(as_numpy(combined), [[1, 20, 3, 40], [5, 60, 7, 80]])
        np.testing.assert_array_equal(as_numpy(r.combine(y, x)), [[10, 2, 30, 4], [50, 6, 70, 8]])
        np.testing.assert_array_equal(as_numpy(r.combine(x, x)), as_numpy(x))
    np.testing.assert_array_equal(r.visible(a[0]), [1, 3])  # one observation too
    with pytest.raises(NotImplementedError):
        r.enumerate_hidden(a)


def test_coordinate_restriction_validation():
    space = spaces.Box(-1.0, 1.0, (3,))
    with pytest.raises(RlimmError, match="out of range"):
        CoordinateRestriction(space, [3])
    with pytest.raises(RlimmError, match="repeated"):
        CoordinateRestriction(space, [1, 1])
    with pytest.raises(RlimmError, match="shows nothing"):
        CoordinateRestriction(space, [])
    with pytest.raises(RlimmError, match="hides nothing"):
        CoordinateRestriction(space, [0, 1, 2])
    with pytest.raises(RlimmError, match="1-D"):
        CoordinateRestriction(spaces.Box(-1.0, 1.0, (2, 3)), [0])


# --------------------------------------------------------------------------- Dict

DICT_SPACE = spaces.Dict(
    {"vel": spaces.Box(-1.0, 1.0, (2,)), "pos": spaces.Box(-5.0, 5.0, (2,)), "mode": spaces.Discrete(3)}
)  # gymnasium orders the keys: mode, pos, vel


def _dict_batch(kind):
    mode = np.array([[2.0], [0.0]], dtype=np.float32)  # as SB3's buffer stores a Discrete value
    pos = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    vel = np.array([[0.1, 0.2], [0.3, 0.4]], dtype=np.float32)
    batch = {"mode": mode, "pos": pos, "vel": vel}
    return {k: torch.as_tensor(v) for k, v in batch.items()} if kind == "torch" else batch


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_key_restriction_by_hand(kind):
    r = KeyRestriction(DICT_SPACE, ["pos", "mode"])
    assert not r.exact
    assert r.visible_names == ("mode", "pos")
    assert list(r.visible_space.spaces) == ["mode", "pos"]
    np.testing.assert_array_equal(r.discrete_features, [True, False, False])
    a = _dict_batch(kind)
    b = {k: v * 10 for k, v in _dict_batch(kind).items()}
    visible = r.visible(a)
    assert set(visible) == {"mode", "pos"} and visible["pos"] is a["pos"]
    features = r.visible_features(a)
    assert type(features) is type(a["pos"])
    np.testing.assert_array_equal(as_numpy(features), [[2, 1, 2], [0, 3, 4]])
    combined = r.combine(a, b)
    assert combined["mode"] is a["mode"] and combined["pos"] is a["pos"] and combined["vel"] is b["vel"]
    assert all(r.combine(a, a)[k] is a[k] for k in a)


def test_key_restriction_validation():
    with pytest.raises(RlimmError, match="'speed'.*mode, pos, vel"):
        KeyRestriction(DICT_SPACE, ["speed"])
    with pytest.raises(RlimmError, match="repeated"):
        KeyRestriction(DICT_SPACE, ["pos", "pos"])
    with pytest.raises(RlimmError, match="shows nothing"):
        KeyRestriction(DICT_SPACE, [])
    with pytest.raises(RlimmError, match="hides nothing"):
        KeyRestriction(DICT_SPACE, ["mode", "pos", "vel"])


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_identity_on_a_box(kind):
    space = spaces.Box(-1.0, 1.0, (3,))
    r = IdentityRestriction(space)
    assert r.exact and r.n_hidden == 1 and not isinstance(r, PartitionRestriction)
    assert r.visible_space == space
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = -a
    if kind == "torch":
        a, b = torch.as_tensor(a), torch.as_tensor(b)
    assert r.combine(a, b) is a
    np.testing.assert_array_equal(as_numpy(r.visible(a)), as_numpy(a))
    np.testing.assert_array_equal(as_numpy(r.visible_features(a)), as_numpy(a))
    np.testing.assert_array_equal(r.discrete_features, [False] * 3)
    candidates, weights = r.enumerate_hidden(a)
    assert candidates is a and type(weights) is type(a)
    np.testing.assert_array_equal(as_numpy(weights), [[1.0], [1.0]])


def test_identity_on_a_dict():
    r = IdentityRestriction(DICT_SPACE)
    a, b = _dict_batch("numpy"), _dict_batch("torch")
    assert r.combine(a, b) is a
    np.testing.assert_array_equal(r.discrete_features, [True, False, False, False, False])
    np.testing.assert_allclose(r.visible_features(a), [[2, 1, 2, 0.1, 0.2], [0, 3, 4, 0.3, 0.4]], rtol=1e-6)


def test_identity_on_discrete_is_the_partition_into_singletons():
    r = IdentityRestriction(spaces.Discrete(5))
    assert isinstance(r, IdentityRestriction) and isinstance(r, PartitionRestriction)
    assert r.exact and (r.n_contexts, r.n_hidden) == (5, 1)
    np.testing.assert_array_equal(r.context_of, np.arange(5))
    np.testing.assert_array_equal(r.members, np.arange(5)[:, None])
    np.testing.assert_array_equal(r.belief, np.ones((5, 1)))
    np.testing.assert_array_equal(r.state_belief(), np.eye(5))
    assert r.visible_space == spaces.Discrete(5)
    for a in kinds(np.array([[3.0], [1.0]], dtype=np.float32)):
        b = a.flip(0) if isinstance(a, torch.Tensor) else a[::-1]
        assert r.combine(a, b) is a
        np.testing.assert_array_equal(as_numpy(r.visible(a)), [3, 1])
        np.testing.assert_array_equal(as_numpy(r.visible_features(a)), [[3.0], [1.0]])
    r.check_space(spaces.Discrete(5))
    with pytest.raises(RlimmError):
        r.check_space(spaces.Discrete(6))


# --------------------------------------------------------------------------- check_space, pickling


def test_check_space_names_both_spaces():
    r = CoordinateRestriction(spaces.Box(-1.0, 1.0, (4,)), [0, 2])
    r.check_space(spaces.Box(-np.inf, np.inf, (4,)))  # bounds may differ (normalisation)
    with pytest.raises(RlimmError, match=r"\(4,\).*\(3,\)"):
        r.check_space(spaces.Box(-1.0, 1.0, (3,)))
    with pytest.raises(RlimmError, match="Discrete"):
        r.check_space(spaces.Discrete(4))
    k = KeyRestriction(DICT_SPACE, ["pos"])
    k.check_space(DICT_SPACE)
    with pytest.raises(RlimmError, match="Dict"):
        k.check_space(spaces.Dict({"pos": spaces.Box(-1.0, 1.0, (2,))}))


@pytest.mark.parametrize(
    "restriction",
    [
        FactoredRestriction(FACTORS, ["x"]),
        IdentityRestriction(spaces.Discrete(4)),
        IdentityRestriction(spaces.Box(-1.0, 1.0, (2,))),
        CoordinateRestriction(spaces.Box(-1.0, 1.0, (3,)), [1]),
        KeyRestriction(DICT_SPACE, ["vel"]),
    ],
    ids=["factored", "identity-discrete", "identity-box", "coordinates", "keys"],
)
def test_restrictions_pickle_after_torch_use(restriction):
    obs = restriction.observation_space.sample()
    if isinstance(obs, dict):
        batch = {k: torch.as_tensor(np.asarray(v, dtype=np.float32)).reshape(1, -1) for k, v in obs.items()}
    else:
        batch = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(1, -1)
    restriction.visible(batch)
    restriction.combine(batch, batch)
    copy = pickle.loads(pickle.dumps(restriction))
    assert type(copy) is type(restriction)
    assert copy.describe() == restriction.describe()
    np.testing.assert_array_equal(
        as_numpy(copy.visible_features(batch)), as_numpy(restriction.visible_features(batch))
    )


# --------------------------------------------------------------------------- restriction_for: names


@pytest.mark.parametrize("visible", [None, ["all"], "all", ["ALL"]])
def test_restriction_for_all_is_the_identity(visible):
    for env in (gym.make("CartPole-v1"), gym.make("Taxi-v4"), StubEnv(DICT_SPACE)):
        r = restriction_for(env, visible)
        assert isinstance(r, IdentityRestriction)
        assert r.observation_space == env.observation_space


def test_restriction_for_showing_every_part_is_the_identity():
    assert isinstance(restriction_for(gym.make("CartPole-v1"), [3, "x", 1, "theta"]), IdentityRestriction)
    taxi = restriction_for(gym.make("Taxi-v4"), ["destination", "passenger", "taxi_col", "taxi_row"])
    assert isinstance(taxi, IdentityRestriction) and isinstance(taxi, PartitionRestriction)
    assert isinstance(restriction_for(StubEnv(DICT_SPACE), ["vel", "pos", "mode"]), IdentityRestriction)


def test_taxi_factors_match_decode():
    env = gym.make("Taxi-v4")
    obs = np.arange(500)
    decoded = np.array([list(env.unwrapped.decode(int(s))) for s in obs])  # row, col, passenger, dest
    r = restriction_for(env, ["taxi_row", "taxi_col", "passenger"])
    assert isinstance(r, FactoredRestriction) and r.exact
    assert (r.n_contexts, r.n_hidden) == (125, 4)
    np.testing.assert_array_equal(r.visible_features(obs), decoded[:, :3])
    assert r.visible_space == spaces.Discrete(125)
    np.testing.assert_array_equal(r.visible(obs), obs // 4)
    d = restriction_for(env, ["destination"])
    np.testing.assert_array_equal(d.visible_features(obs)[:, 0], decoded[:, 3])
    # swapping the destination between two states, by decoding
    a, b = obs, obs[::-1].copy()
    combined = r.combine(a, b)
    for x, y, z in zip(a[:50], b[:50], combined[:50], strict=True):
        row, col, passenger, _ = env.unwrapped.decode(int(x))
        assert z == env.unwrapped.encode(row, col, passenger, list(env.unwrapped.decode(int(y)))[3])


@pytest.mark.parametrize("map_name,size", [("4x4", 4), ("8x8", 8)])
def test_frozen_lake_rows_and_columns_read_from_the_map(map_name, size):
    env = gym.make("FrozenLake-v1", map_name=map_name)
    r = restriction_for(env, ["col"])
    assert (r.n_contexts, r.n_hidden) == (size, size)
    obs = np.arange(size * size)
    np.testing.assert_array_equal(r.visible_features(obs)[:, 0], obs % size)
    np.testing.assert_array_equal(restriction_for(env, ["row"]).visible(obs), obs // size)
    assert restriction_for(gym.make("FrozenLake8x8-v1"), ["row"]).n_contexts == 8


def test_cliff_walking_rows_and_columns():
    r = restriction_for(gym.make("CliffWalking-v1"), ["col"])
    obs = np.arange(48)
    np.testing.assert_array_equal(r.visible(obs), obs % 12)
    assert (r.n_contexts, r.n_hidden) == (12, 4)
    np.testing.assert_array_equal(
        restriction_for(gym.make("CliffWalking-v1"), ["row"]).visible(obs), obs // 12
    )


def test_grid_keeps_its_declared_factors():
    r = restriction_for(gym.make(GRID_ID), ["x"])
    assert isinstance(r, FactoredRestriction) and r.visible_fields == ["x"]
    np.testing.assert_array_equal(r.context_of, np.arange(121) % 11)
    np.testing.assert_array_equal(
        r.context_of, FactoredRestriction.for_env(ToroidalGridEnv(), ["x"]).context_of
    )


def test_factors_given_in_a_config():
    env = StubEnv(spaces.Discrete(6))
    r = restriction_for(env, ["b"], factors={"a": 2, "b": 3})
    np.testing.assert_array_equal(r.context_of, np.arange(6) % 3)
    # given factors override the known ones
    taxi = restriction_for(gym.make("Taxi-v4"), ["cell"], factors={"cell": 25, "rest": 20})
    np.testing.assert_array_equal(taxi.visible(np.array([0, 19, 20, 499])), [0, 0, 1, 24])
    with pytest.raises(RlimmError, match="give 6 observations.*Discrete\\(7\\)"):
        restriction_for(StubEnv(spaces.Discrete(7)), ["a"], factors={"a": 2, "b": 3})
    with pytest.raises(RlimmError, match="factors"):
        restriction_for(StubEnv(spaces.Discrete(7)), ["a"])
    with pytest.raises(RlimmError, match="size"):
        restriction_for(env, ["a"], factors={"a": 0, "b": 3})


BOX_NAMES = {
    "CartPole-v1": ["x", "x_dot", "theta", "theta_dot"],
    "MountainCar-v0": ["position", "velocity"],
    "MountainCarContinuous-v0": ["position", "velocity"],
    "Pendulum-v1": ["cos_theta", "sin_theta", "theta_dot"],
    "Acrobot-v1": ["cos1", "sin1", "cos2", "sin2", "dtheta1", "dtheta2"],
    "LunarLander-v3": ["x", "y", "vx", "vy", "angle", "angular_velocity", "left_leg", "right_leg"],
    "LunarLanderContinuous-v3": ["x", "y", "vx", "vy", "angle", "angular_velocity", "left_leg", "right_leg"],
}
NOVEL_VISIBLE = {
    "CartPole-v1": [0, 2],
    "MountainCar-v0": [0],
    "MountainCarContinuous-v0": [0],
    "Pendulum-v1": [0, 1],
    "LunarLander-v3": [0, 1, 4, 6, 7],
    "LunarLanderContinuous-v3": [0, 1, 4, 6, 7],
}


def _box_env(env_id):
    if env_id.startswith("LunarLander"):  # Box2D is optional: a stand-in with the same id and space
        return StubEnv(spaces.Box(-np.inf, np.inf, (8,), np.float32), env_id)
    return gym.make(env_id)


@pytest.mark.parametrize("env_id", sorted(BOX_NAMES))
def test_coordinate_names_and_indices(env_id):
    env = _box_env(env_id)
    names = BOX_NAMES[env_id]
    assert env.observation_space.shape == (len(names),)
    for i, name in enumerate(names):
        by_name = restriction_for(env, [name])
        by_index = restriction_for(env, [i])
        by_string = restriction_for(env, [str(i)])
        for r in (by_name, by_index, by_string):
            assert isinstance(r, CoordinateRestriction)
            np.testing.assert_array_equal(r.indices, [i])
            assert r.visible_names == (name,)
    two = restriction_for(env, [names[-1], 0])
    if len(names) > 2:
        np.testing.assert_array_equal(two.indices, [0, len(names) - 1])
    else:  # both coordinates: nothing hidden
        assert isinstance(two, IdentityRestriction)


@pytest.mark.parametrize("env_id", sorted(NOVEL_VISIBLE))
def test_novel_masks(env_id):
    r = restriction_for(_box_env(env_id), ["novel"])
    assert isinstance(r, CoordinateRestriction)
    np.testing.assert_array_equal(r.indices, NOVEL_VISIBLE[env_id])
    assert r.visible_space.shape == (len(NOVEL_VISIBLE[env_id]),)
    assert restriction_for(_box_env(env_id), "novel").describe() == r.describe()


def test_cartpole_novel_names_what_it_hides():
    r = restriction_for(gym.make("CartPole-v1"), ["novel"])
    assert r.visible_names == ("x", "theta") and r.hidden_names == ("x_dot", "theta_dot")
    assert "x_dot" in r.describe() and "theta_dot" in r.describe()


def test_indices_work_on_a_box_without_known_names():
    env = StubEnv(spaces.Box(-1.0, 1.0, (5,)), "Unknown-v0")
    np.testing.assert_array_equal(restriction_for(env, [4, "1"]).indices, [1, 4])
    with pytest.raises(RlimmError, match="'speed'.*no coordinate names.*0\\.\\.4"):
        restriction_for(env, ["speed"])


# --------------------------------------------------------------------------- restriction_for: bad input


@pytest.mark.parametrize(
    ("env_id", "visible", "pattern"),
    [
        ("CartPole-v1", [4], r"4.*out of range.*0\.\.3"),
        ("CartPole-v1", [-1], r"-1.*out of range"),
        ("CartPole-v1", ["7"], r"'7'.*out of range"),
        ("CartPole-v1", [0, "x"], "repeated"),
        ("CartPole-v1", [2, 2], "repeated"),
        ("CartPole-v1", [], "shows nothing"),
        ("CartPole-v1", ["taxi_row"], r"'taxi_row'.*x, x_dot, theta, theta_dot"),
        ("CartPole-v1", ["thetadot"], r"'thetadot'.*theta_dot.*novel"),
        ("CartPole-v1", ["novel", "x"], "novel.*cannot be combined"),
        ("CartPole-v1", ["all", "x"], "all.*cannot be combined"),
        ("Acrobot-v1", ["novel"], r"no 'novel' mask.*Acrobot-v1.*CartPole-v1"),
        ("Taxi-v4", [0], r"indices \[0\].*Box.*taxi_row, taxi_col, passenger, destination"),
        ("Taxi-v4", ["2"], r"indices.*Box"),
        ("Taxi-v4", ["theta"], r"'theta'.*taxi_row, taxi_col, passenger, destination"),
        ("Taxi-v4", ["novel"], r"'novel'.*Box.*taxi_row"),
        ("Taxi-v4", ["passenger", "passenger"], "repeated"),
        ("Taxi-v4", [], "shows nothing"),
        ("FrozenLake-v1", ["x"], r"'x'.*row, col"),
    ],
)
def test_bad_visible_raises_a_clear_message(env_id, visible, pattern):
    with pytest.raises(RlimmError, match=pattern):
        restriction_for(gym.make(env_id), visible)


def test_other_bad_input():
    with pytest.raises(RlimmError, match="factors apply to Discrete.*CartPole-v1"):
        restriction_for(gym.make("CartPole-v1"), ["x"], factors={"a": 4})
    image = StubEnv(spaces.Box(0, 255, (4, 4, 3), np.uint8), "Image-v0")
    with pytest.raises(RlimmError, match=r"\(4, 4, 3\).*not 1-D"):
        restriction_for(image, [0])
    assert isinstance(restriction_for(image, None), IdentityRestriction)  # the identity fits any Box
    with pytest.raises(RlimmError, match="by key.*mode, pos, vel"):
        restriction_for(StubEnv(DICT_SPACE), [0])
    with pytest.raises(RlimmError, match="'speed'.*mode, pos, vel"):
        restriction_for(StubEnv(DICT_SPACE), ["speed"])
    multi = StubEnv(spaces.MultiDiscrete([3, 4]))
    with pytest.raises(RlimmError, match="MultiDiscrete.*Discrete, 1-D Box and Dict"):
        restriction_for(multi, [0])
    assert isinstance(restriction_for(multi, None), IdentityRestriction)
    with pytest.raises(RlimmError, match="not supported"):
        IdentityRestriction(spaces.Tuple([spaces.Discrete(2)]))


def test_dict_restriction_for_keys():
    r = restriction_for(StubEnv(DICT_SPACE), ["vel"])
    assert isinstance(r, KeyRestriction) and r.visible_names == ("vel",)


# --------------------------------------------------------------------------- VisibleObservation


def test_visible_observation_on_cartpole_without_velocities():
    env, twin = gym.make("CartPole-v1"), gym.make("CartPole-v1")
    r = restriction_for(env, ["novel"])
    wrapped = VisibleObservation(env, r)
    assert wrapped.observation_space == r.visible_space
    assert wrapped.observation_space.shape == (2,)
    obs, _ = wrapped.reset(seed=3)
    full, _ = twin.reset(seed=3)
    for _ in range(20):
        assert wrapped.observation_space.contains(obs)
        np.testing.assert_array_equal(obs, full[[0, 2]])
        obs, _, done, _, _ = wrapped.step(1)
        full, _, _, _, _ = twin.step(1)
        if done:
            break


def test_visible_observation_on_taxi_without_destination():
    env, twin = gym.make("Taxi-v4"), gym.make("Taxi-v4")
    wrapped = VisibleObservation(env, restriction_for(env, ["taxi_row", "taxi_col", "passenger"]))
    assert wrapped.observation_space == spaces.Discrete(125)
    obs, _ = wrapped.reset(seed=1)
    full, _ = twin.reset(seed=1)
    for action in [0, 1, 2, 3, 4, 5, 0, 0]:
        assert isinstance(obs, int) and obs == full // 4
        obs, _, _, _, _ = wrapped.step(action)
        full, _, _, _, _ = twin.step(action)


def test_visible_observation_on_a_dict_and_the_identity():
    env = StubEnv(DICT_SPACE)
    wrapped = VisibleObservation(env, restriction_for(env, ["pos", "mode"]))
    assert list(wrapped.observation_space.spaces) == ["mode", "pos"]
    obs, _ = wrapped.reset(seed=0)
    assert wrapped.observation_space.contains(obs)
    same = VisibleObservation(gym.make("Pendulum-v1"), restriction_for(gym.make("Pendulum-v1"), None))
    assert same.observation_space == gym.make("Pendulum-v1").observation_space
    obs, _ = same.reset(seed=0)
    assert obs.shape == (3,) and same.observation_space.contains(obs)


def test_visible_observation_refuses_a_restriction_for_another_space():
    r = restriction_for(gym.make("CartPole-v1"), ["novel"])
    with pytest.raises(RlimmError, match=r"CartPole|\(4,\)"):
        VisibleObservation(gym.make("Pendulum-v1"), r)


@pytest.mark.parametrize(
    ("env_id", "visible"),
    [("CartPole-v1", ["novel"]), ("Taxi-v4", ["taxi_row", "taxi_col", "passenger"])],
)
def test_sb3_ppo_trains_on_the_visible_view(env_id, visible):
    from stable_baselines3 import PPO

    env = gym.make(env_id)
    wrapped = VisibleObservation(env, restriction_for(env, visible))
    model = PPO("MlpPolicy", wrapped, n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu")
    model.learn(256)
    assert model.observation_space == wrapped.observation_space
    obs, _ = wrapped.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(int(action))
