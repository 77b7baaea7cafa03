"""AES-256-GCM at rest: properties that must hold for every key and every input."""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webrana_proxy.crypto import NONCE_BYTES, DecryptionFailed, Keyring, Sealed, mask_key

MASTER = os.urandom(32)
keys = st.text(min_size=1, max_size=300)
uuids = st.uuids()


@given(keys, uuids, uuids)
def test_round_trip(plaintext: str, user_id: uuid.UUID, key_id: uuid.UUID) -> None:
    ring = Keyring(MASTER)
    sealed = ring.seal(plaintext, user_id, key_id)
    assert len(sealed.nonce) == NONCE_BYTES
    assert plaintext.encode() not in sealed.ciphertext or len(plaintext) < 4
    assert ring.open(sealed, user_id, key_id) == plaintext


def test_nonces_never_repeat() -> None:
    ring = Keyring(MASTER)
    uid, kid = uuid.uuid4(), uuid.uuid4()
    nonces = {ring.seal("sk-same-key-every-time", uid, kid).nonce for _ in range(20_000)}
    assert len(nonces) == 20_000


@given(keys, uuids, uuids, uuids)
def test_ciphertext_moved_to_another_row_fails(plaintext: str, user_id: uuid.UUID, key_id: uuid.UUID,
                                                other: uuid.UUID) -> None:
    ring = Keyring(MASTER)
    sealed = ring.seal(plaintext, user_id, key_id)
    if other != user_id:
        with pytest.raises(DecryptionFailed):
            ring.open(sealed, other, key_id)
    if other != key_id:
        with pytest.raises(DecryptionFailed):
            ring.open(sealed, user_id, other)


@given(keys, st.data())
def test_any_flipped_ciphertext_byte_fails(plaintext: str, data: st.DataObject) -> None:
    ring = Keyring(MASTER)
    uid, kid = uuid.uuid4(), uuid.uuid4()
    sealed = ring.seal(plaintext, uid, kid)
    i = data.draw(st.integers(0, len(sealed.ciphertext) - 1))
    flip = data.draw(st.integers(1, 255))
    broken = bytearray(sealed.ciphertext)
    broken[i] ^= flip
    with pytest.raises(DecryptionFailed):
        ring.open(Sealed(bytes(broken), sealed.nonce, sealed.key_version), uid, kid)


@settings(max_examples=50)
@given(st.lists(keys, min_size=1, max_size=10))
def test_rotation_keeps_every_key_readable(plaintexts: list[str]) -> None:
    old_master, new_master = os.urandom(32), os.urandom(32)
    old = Keyring(old_master)
    rows = [(p, uuid.uuid4(), uuid.uuid4()) for p in plaintexts]
    sealed = [old.seal(p, u, k) for p, u, k in rows]
    during = Keyring(new_master, previous=old_master)
    resealed = [during.seal(during.open(s, u, k), u, k) for s, (_, u, k) in zip(sealed, rows, strict=True)]
    after = Keyring(new_master)
    assert [after.open(s, u, k) for s, (_, u, k) in zip(resealed, rows, strict=True)] == plaintexts
    assert all(s.key_version == after.current_version for s in resealed)
    with pytest.raises(DecryptionFailed):
        after.open(sealed[0], rows[0][1], rows[0][2])


def test_mask_shows_only_first_three_and_last_four() -> None:
    assert mask_key("sk-proj-abcdefghijklmnop1234") == "sk-...1234"
    assert mask_key("short") == "..."


@given(keys, uuids, uuids, uuids)
def test_a_team_key_is_bound_to_its_team_and_never_opens_as_a_personal_key(
        plaintext: str, user_id: uuid.UUID, key_id: uuid.UUID, org_id: uuid.UUID) -> None:
    ring = Keyring(MASTER)
    team = ring.seal(plaintext, user_id, key_id, org_id)
    assert ring.open(team, uuid.uuid4(), key_id, org_id) == plaintext  # whoever added it: the team's
    for wrong in ((user_id, key_id, None), (org_id, key_id, None), (user_id, key_id, uuid.uuid4()),
                  (user_id, uuid.uuid4(), org_id)):
        with pytest.raises(DecryptionFailed):
            ring.open(team, *wrong)
    personal = ring.seal(plaintext, org_id, key_id)  # a user whose id equals the team's cannot borrow it either
    with pytest.raises(DecryptionFailed):
        ring.open(personal, user_id, key_id, org_id)
    assert ring.open(personal, org_id, key_id) == plaintext  # personal keys keep the v1 format
