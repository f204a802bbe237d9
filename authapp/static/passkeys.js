// Passkeys on authapp's pages (docs/api.md "Passkeys"). A form marked data-passkey="get" or
// "create" gets its button: the script asks the form's data-options URL for WebAuthn options,
// lets the browser talk to the authenticator, puts the answer (JSON) in the form's hidden
// `credential` field and submits the form, so the server's answer is an ordinary page. A "get"
// form with data-autofill also offers the passkeys in the username field's autofill
// (conditional mediation) where the browser can. Without this script, or without WebAuthn, the
// forms stay hidden and the password forms work as before.
"use strict";

(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    return;
  }

  function bytes(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
  }

  function text(buffer) {
    const binary = String.fromCharCode(...new Uint8Array(buffer));
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map((d) => Object.assign({}, d, { id: bytes(d.id) }));
  }

  // Browsers since 2024 read the JSON form themselves; older ones get it decoded here.
  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: bytes(json.challenge),
      user: Object.assign({}, json.user, { id: bytes(json.user.id) }),
      excludeCredentials: descriptors(json.excludeCredentials),
    });
  }

  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: bytes(json.challenge),
      allowCredentials: descriptors(json.allowCredentials),
    });
  }

  function answer(credential) {
    if (typeof credential.toJSON === "function") {
      return credential.toJSON();
    }
    const r = credential.response;
    const response = { clientDataJSON: text(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = text(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = text(r.authenticatorData);
      response.signature = text(r.signature);
      response.userHandle = r.userHandle ? text(r.userHandle) : null;
    }
    return {
      id: credential.id,
      rawId: text(credential.rawId),
      type: credential.type,
      response: response,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  const REFUSALS = {
    NotAllowedError: "The passkey request was cancelled or timed out.",
    InvalidStateError: "This authenticator holds a passkey for this account already.",
    SecurityError: "Passkeys need this site to be opened by its domain name, such as localhost.",
    AbortError: "",
  };

  async function options(form) {
    const body = new URLSearchParams(new FormData(form)); // the CSRF token, and a password
    body.delete("credential");
    const reply = await fetch(form.dataset.options, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    const json = await reply.json().catch(() => null);
    if (!reply.ok || !json || !json.publicKey) {
      const refusal = (json && json.error) || {};
      const fields = Object.values(refusal.fields || {}).flat().join(" ");
      throw new Error(fields || refusal.message || "The passkey could not be started; try again.");
    }
    return json.publicKey;
  }

  function send(form, credential) {
    // The password went with the options request; the answer needs none.
    form.querySelectorAll("input[type=password]").forEach((input) => (input.value = ""));
    form.elements.credential.value = JSON.stringify(answer(credential));
    form.submit();
  }

  function say(form, message) {
    const status = form.querySelector("[data-passkey-status]");
    if (status) {
      status.textContent = message;
    }
  }

  function refused(form, error) {
    const known = REFUSALS[error && error.name];
    say(form, known === undefined ? error.message || String(error) : known);
  }

  function setUp(form) {
    let autofill = null; // the pending conditional request, aborted before a modal one
    const button = form.querySelector("[data-passkey-start]");
    form.hidden = false;

    async function ask(mediation) {
      if (autofill) {
        autofill.abort();
      }
      const controller = new AbortController();
      if (mediation === "conditional") {
        autofill = controller;
      }
      const json = await options(form);
      const signal = controller.signal;
      if (form.dataset.passkey === "create") {
        return navigator.credentials.create({ publicKey: creationOptions(json), signal: signal });
      }
      const request = { publicKey: requestOptions(json), signal: signal };
      if (mediation) {
        request.mediation = mediation;
      }
      return navigator.credentials.get(request);
    }

    button.addEventListener("click", async () => {
      say(form, "");
      button.disabled = true;
      try {
        send(form, await ask(null));
      } catch (error) {
        refused(form, error);
        button.disabled = false;
      }
    });

    if (form.dataset.autofill !== undefined && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(async (available) => {
        if (!available) {
          return;
        }
        try {
          send(form, await ask("conditional"));
        } catch (error) {
          // Autofill is an offer, not a request: its failures stay quiet (the button still
          // works, and says what went wrong when it is used).
        }
      });
    }
  }

  document.querySelectorAll("form[data-passkey]").forEach(setUp);
})();
