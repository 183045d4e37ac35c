"""shared.apperror: the stable-code error; each tier's subclass carries its own catalogue."""

from __future__ import annotations

import pytest

from shared.apperror import AppError


class StaffError(AppError):
    CATALOGUE = {"not_found": (404, "見つかりません。", "Not found."),
                 "conflict": (409, "競合しました。", "Conflict.")}


class GuestError(AppError):
    CATALOGUE = {"not_found": (404, "見つかりません。", "Not found."),
                 "rate_limited": (429, "少し 待って ください。", "Please wait.")}


def test_code_status_and_body() -> None:
    err = StaffError("conflict")
    assert (err.code, err.status, str(err)) == ("conflict", 409, "conflict")
    assert err.to_json() == {"error": {"code": "conflict", "message": "競合しました。", "message_en": "Conflict."}}


def test_detail_is_added_only_when_given() -> None:
    body = GuestError("rate_limited", retry_after=3).to_json()
    assert body["error"]["detail"] == {"retry_after": 3}
    assert "detail" not in GuestError("rate_limited").to_json()["error"]


def test_each_tier_accepts_only_its_own_codes() -> None:
    with pytest.raises(ValueError, match="rate_limited"):
        StaffError("rate_limited")
    with pytest.raises(ValueError, match="conflict"):
        GuestError("conflict")
    with pytest.raises(ValueError):
        AppError("not_found")          # the base has no catalogue: raise a tier's subclass
    assert issubclass(StaffError, AppError) and not issubclass(StaffError, GuestError)


def test_the_tiers_bind_their_catalogues() -> None:
    from internet_relay import errors as relay_errors
    from lgwan_server import errors as lgwan_errors

    for module in (lgwan_errors, relay_errors):
        assert issubclass(module.AppError, AppError)
        assert module.AppError.CATALOGUE is module.CATALOGUE
        assert module.AppError("not_found").status == 404
    # The same code speaks to staff on LGWAN and in やさしい日本語 to guests on the relay.
    assert (lgwan_errors.AppError("session_expired").to_json()["error"]["message"]
            != relay_errors.AppError("session_expired").to_json()["error"]["message"])
