// JSON over fetch, with the API's error envelope turned into an ApiError.

export class ApiError extends Error {
  constructor(status, code, message, details = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error) {
      return new ApiError(response.status, body.error.code, body.error.message,
        body.error.details);
    }
  } catch {
    // not JSON: fall through to a generic message
  }
  return new ApiError(response.status, "http_error",
    `the server answered ${response.status} ${response.statusText}`.trim());
}

/** `{data, headers}` for a 2xx answer; throws ApiError otherwise (or on a network failure). */
export async function request(method, url, { body, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network_error", "the server could not be reached");
  }
  if (!response.ok) throw await errorOf(response);
  return { data: await response.json(), headers: response.headers };
}

export const get = (url, options) => request("GET", url, options);
export const post = (url, body, options = {}) => request("POST", url, { ...options, body });

/** A query string from an object; arrays repeat the parameter, empty values are left out. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== "") search.append(name, String(v));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
