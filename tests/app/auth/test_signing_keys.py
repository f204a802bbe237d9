"""Asymmetric signing, the JWKS and key rotation; key and algorithm confusion: JW-1, JW-2, JW-7."""

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from authapp.platform.config import ConfigError
from authapp.platform.extensions import db
from tests.conftest import PASSWORD, TEST_SECRETS, auth_header, build_app

ME = "/api/v1/auth/me"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


def write_key(directory, name, key):
    private = directory / f"{name}.key"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = directory / f"{name}.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture(scope="module")
def key_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    return {
        "rsa": write_key(directory, "rsa", rsa.generate_private_key(65537, 2048)),
        "rsa_next": write_key(directory, "rsa_next", rsa.generate_private_key(65537, 2048)),
        "ed": write_key(directory, "ed", ed25519.Ed25519PrivateKey.generate()),
    }


@pytest.fixture
def keyed_app(app, database_url):
    """Apps on the test database with other signing settings; their engines are disposed."""
    made = []

    def make(**settings):
        made.append(build_app(database_url, **settings))
        return made[-1]

    yield make
    for other in made:
        with other.app_context():
            db.engine.dispose()


def login_on(app, make_user_email="ada@example.com"):
    response = app.test_client().post(
        "/api/v1/auth/login", json={"login": make_user_email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.json
    return response.json


@pytest.mark.parametrize(
    ("name", "algorithm", "kty"), [("rsa", "RS256", "RSA"), ("ed", "EdDSA", "OKP")]
)
def test_asymmetric_tokens_carry_a_kid_published_in_the_jwks(
    keyed_app, make_user, key_files, name, algorithm, kty
):
    make_user()
    app = keyed_app(JWT_PRIVATE_KEY_FILE=str(key_files[name][0]))

    pair = login_on(app)
    header = jwt.get_unverified_header(pair["access_token"])
    jwks = app.test_client().get("/.well-known/jwks.json").json

    assert header["alg"] == algorithm
    assert [key["kid"] for key in jwks["keys"]] == [header["kid"]]
    (key,) = jwks["keys"]
    assert key["kty"] == kty
    assert key["alg"] == algorithm
    assert key["use"] == "sig"
    assert not PRIVATE_MEMBERS & set(key)
    public = jwt.PyJWK(key).key
    claims = jwt.decode(pair["access_token"], public, algorithms=[algorithm], audience="authapp")
    assert claims["type"] == "access"
    me = app.test_client().get(ME, headers=auth_header(pair["access_token"]))
    assert me.status_code == 200


def test_jwks_is_empty_with_hs256(client):
    assert client.get("/.well-known/jwks.json").json == {"keys": []}


def test_old_public_keys_keep_verifying_after_a_rotation(keyed_app, make_user, key_files, tmp_path):
    make_user()
    before = keyed_app(JWT_PRIVATE_KEY_FILE=str(key_files["rsa"][0]))
    old_pair = login_on(before)
    old_keys = tmp_path / "public"
    old_keys.mkdir()
    (old_keys / "rsa.pem").write_bytes(key_files["rsa"][1].read_bytes())

    after = keyed_app(
        JWT_PRIVATE_KEY_FILE=str(key_files["rsa_next"][0]), JWT_PUBLIC_KEYS_DIR=str(old_keys)
    )
    forgot = keyed_app(JWT_PRIVATE_KEY_FILE=str(key_files["rsa_next"][0]))

    new_pair = login_on(after)
    assert (
        after.test_client().get(ME, headers=auth_header(old_pair["access_token"])).status_code
        == 200
    )
    assert (
        jwt.get_unverified_header(new_pair["access_token"])["kid"]
        != (jwt.get_unverified_header(old_pair["access_token"])["kid"])
    )
    assert len(after.test_client().get("/.well-known/jwks.json").json["keys"]) == 2
    refused = forgot.test_client().get(ME, headers=auth_header(old_pair["access_token"]))
    assert refused.status_code == 401
    assert refused.json["error"]["code"] == "invalid_token"


def rsa_app_and_token(keyed_app, key_files):
    """An RS256 app and the header and claims of an access token it issued."""
    app = keyed_app(JWT_PRIVATE_KEY_FILE=str(key_files["rsa"][0]))
    token = login_on(app)["access_token"]
    return (
        app,
        jwt.get_unverified_header(token),
        jwt.decode(token, options={"verify_signature": False}),
    )


def _private(path):
    return serialization.load_pem_private_key(path.read_bytes(), None)


def _b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("kid", ["unknown", "../../etc/passwd", "' OR '1'='1", "", "k" * 5000])
def test_unknown_or_malicious_kid_is_invalid_token(keyed_app, make_user, key_files, kid):
    """JW-7."""
    make_user()
    app = keyed_app(JWT_PRIVATE_KEY_FILE=str(key_files["rsa"][0]))
    claims = jwt.decode(login_on(app)["access_token"], options={"verify_signature": False})

    forged = jwt.encode(
        claims, _private(key_files["rsa"][0]), algorithm="RS256", headers={"kid": kid}
    )

    response = app.test_client().get(ME, headers=auth_header(forged))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_token"


def test_public_key_as_hmac_secret_is_refused(keyed_app, make_user, key_files):
    """JW-2: RS256 -> HS256 key confusion (CVE-2022-29217 style)."""
    make_user()
    app, header, claims = rsa_app_and_token(keyed_app, key_files)
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': header['kid']})}.{_b64(claims)}"
    secret = key_files["rsa"][1].read_bytes()
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    response = app.test_client().get(ME, headers=auth_header(forged))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_token"


def test_an_embedded_jwk_is_never_trusted(keyed_app, make_user, key_files):
    """JW-7: a token carrying its own key (jwk header) signed by that key is refused."""
    make_user()
    app, header, claims = rsa_app_and_token(keyed_app, key_files)
    attacker = rsa.generate_private_key(65537, 2048)
    embedded = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))

    forged = jwt.encode(
        claims | {"roles": ["owner"]},
        attacker,
        algorithm="RS256",
        headers={"kid": header["kid"], "jwk": embedded, "jku": "https://evil.example/jwks"},
    )

    response = app.test_client().get(ME, headers=auth_header(forged))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_token"


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the forger's
@pytest.mark.parametrize("algorithm", ["HS512", "HS384"])
def test_another_hmac_algorithm_than_configured_is_refused(client, make_user, login, algorithm):
    """JW-2: HS256 is configured; the same secret under another algorithm is not accepted."""
    claims = jwt.decode(login(make_user())["access_token"], options={"verify_signature": False})

    forged = jwt.encode(claims, TEST_SECRETS["JWT_SECRET_KEY"], algorithm=algorithm)

    response = client.get(ME, headers=auth_header(forged))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_token"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_spelling_is_refused(client, make_user, login, alg):
    """JW-1."""
    claims = jwt.decode(login(make_user())["access_token"], options={"verify_signature": False})
    forged = f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(claims)}."

    response = client.get(ME, headers=auth_header(forged))
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_token"


def test_hs256_token_naming_a_kid_is_refused(client, make_user, login):
    claims = jwt.decode(login(make_user())["access_token"], options={"verify_signature": False})

    forged = jwt.encode(
        claims, TEST_SECRETS["JWT_SECRET_KEY"], algorithm="HS256", headers={"kid": "k1"}
    )

    assert client.get(ME, headers=auth_header(forged)).status_code == 401


def test_an_unreadable_key_file_stops_the_app_naming_the_variable(database_url, tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")

    with pytest.raises(ConfigError, match="JWT_PRIVATE_KEY_FILE"):
        build_app(database_url, JWT_PRIVATE_KEY_FILE=str(bad))
