/*
 * web_assets.c: serves the embedded monitoring page (see web_assets.h).
 *
 * The bytes live in static storage (web_assets_data.c), so a reply points
 * MHD at them without copying (MHD_RESPMEM_PERSISTENT). The page gets a
 * Content-Security-Policy that allows only its own scripts and connections
 * to this origin: job names and specs are shown by the page, and a name
 * that smuggles markup must stay text (app.js never builds HTML from data
 * either).
 */
#include "web_assets.h"

#include <microhttpd.h>
#include <string.h>

#include "http.h"
#include "qn_err.h"

/* uPlot sets element styles from script, hence 'unsafe-inline' for styles only. */
#define WEB_CSP                                                                                    \
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "                    \
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "              \
    "frame-ancestors 'none'"

const struct web_asset *web_asset_find(const char *name)
{
    for (size_t i = 0; name && i < web_assets_n; i++)
        if (strcmp(web_assets[i].name, name) == 0)
            return &web_assets[i];
    return NULL;
}

/* Replies 200 with asset a, from static storage. */
static int web__reply(struct http_req *req, const struct web_asset *a)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return QN_ENOMEM;
    MHD_add_response_header(resp, "Content-Type", a->type);
    MHD_add_response_header(resp, "Content-Security-Policy", WEB_CSP);
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    return http_reply_response(req, 200, resp);
}

/* GET /: the page. */
static int web__index(struct http_req *req)
{
    const struct web_asset *a = web_asset_find("index.html");
    if (!a)
        return http_reply_err(req, QN_ENOTFOUND, NULL, "this build has no page");
    return web__reply(req, a);
}

/* GET /assets/{name}: a script, a style sheet or a licence of the page. */
static int web__asset(struct http_req *req)
{
    const char *name = http_req_param(req, "name");
    const struct web_asset *a = web_asset_find(name);
    if (!a || strcmp(name, "index.html") == 0)
        return http_reply_err(req, QN_ENOTFOUND, NULL, "no asset named '%s'", name ? name : "");
    return web__reply(req, a);
}

static const struct http_route web__routes[] = {
    {"GET", "/", web__index, HTTP_F_PUBLIC},
    {"GET", "/assets/{name}", web__asset, HTTP_F_PUBLIC},
};

int web_routes_register(struct http_server *srv)
{
    return http_routes_add(srv, web__routes, sizeof web__routes / sizeof web__routes[0]);
}
