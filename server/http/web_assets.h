/*
 * web_assets.h: the monitoring page (web/) embedded in the qn binary, and
 * the routes that serve it: GET / (index.html) and GET /assets/{name}.
 *
 * The files are compiled in (server/http/web_assets_data.c, generated from web/
 * by web/embed.sh; the Makefile regenerates it when a file in web/ changes)
 * so that `qn serve` answers the page from any working directory, with no
 * file lookups and no build step at run time. Both routes are public: the
 * page itself holds no data, and every request it makes for data carries
 * the user's token.
 */
#ifndef QN_WEB_ASSETS_H
#define QN_WEB_ASSETS_H

#include <stddef.h>

struct http_server;

/* One embedded file (static storage, never freed). */
struct web_asset {
    const char *name;          /* "app.js": the last segment of /assets/{name}; "index.html" is / */
    const char *type;          /* Content-Type */
    const unsigned char *data; /* (len) bytes */
    size_t len;
};

/* The table web/embed.sh generates: web_assets_n entries. */
extern const struct web_asset web_assets[];
extern const size_t web_assets_n;

/* The asset called name (borrowed, static), or NULL. */
const struct web_asset *web_asset_find(const char *name);

/* Adds GET / and GET /assets/{name} to srv (http_routes_add). */
int web_routes_register(struct http_server *srv);

#endif
