package console

import (
	"net/http"
	"strings"
)

// openAPIDocument builds the OpenAPI 3.0 document from the route table, so that every registered route is in it.
func (cs *Console) openAPIDocument() map[string]any {
	errResp := map[string]any{"description": "error", "content": map[string]any{"application/json": map[string]any{
		"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}}
	paths := map[string]any{}
	for _, rt := range cs.routes() {
		item, _ := paths[rt.Path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.Path] = item
		}
		op := map[string]any{
			"summary":     rt.Summary,
			"operationId": strings.ToLower(rt.Method) + strings.NewReplacer("/api/v1/", "_", "/", "_", "{", "", "}", "").Replace(rt.Path),
			"responses": map[string]any{
				"200": map[string]any{"description": "success (201 for creations, 204 for deletions)"},
				"400": errResp, "401": errResp, "403": errResp, "404": errResp, "409": errResp, "412": errResp, "429": errResp,
			},
		}
		switch rt.Auth {
		case authNone:
			op["security"] = []any{}
		case authSession:
			op["security"] = []any{map[string]any{"session": []string{}}}
		case authAny:
			op["security"] = []any{map[string]any{"session": []string{}}, map[string]any{"apiKey": []string{}}}
		}
		var params []any
		if strings.Contains(rt.Path, "{id}") {
			params = append(params, map[string]any{"name": "id", "in": "path", "required": true, "schema": map[string]any{"type": "integer"}})
		}
		if rt.Method == "GET" && (strings.HasSuffix(rt.Path, "/projects") || strings.HasSuffix(rt.Path, "/apikeys")) {
			params = append(params,
				map[string]any{"name": "limit", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1, "maximum": 100, "default": 50}},
				map[string]any{"name": "after", "in": "query", "schema": map[string]any{"type": "integer"}, "description": "the next value of the previous page"})
		}
		if rt.Method == "PATCH" || (rt.Method == "DELETE" && strings.Contains(rt.Path, "/projects/")) {
			params = append(params, map[string]any{"name": "If-Match", "in": "header", "schema": map[string]any{"type": "string"}, "description": "the project's ETag"})
		}
		if rt.Auth == authSession || rt.Auth == authAny {
			if rt.Method != "GET" {
				params = append(params, map[string]any{"name": "X-CSRF-Token", "in": "header", "schema": map[string]any{"type": "string"},
					"description": "required with a session cookie; the csrf_token of GET /api/v1/session"})
			}
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Body != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{
				"schema": map[string]any{"type": "object"}, "example": rt.Body}}}
		}
		item[strings.ToLower(rt.Method)] = op
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "Stoa console API", "version": "1"},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"session": map[string]any{"type": "apiKey", "in": "cookie", "name": SessionCookie},
				"apiKey":  map[string]any{"type": "http", "scheme": "basic", "description": "API key id as user name, secret as password"},
			},
			"schemas": map[string]any{"Error": map[string]any{
				"type": "object", "required": []string{"error"},
				"properties": map[string]any{"error": map[string]any{"type": "object", "properties": map[string]any{
					"code": map[string]any{"type": "string"}, "message": map[string]any{"type": "string"}}}},
			}},
		},
	}
}

func (cs *Console) openAPI(w http.ResponseWriter, r *http.Request, _ *principal) {
	writeJSON(w, http.StatusOK, cs.openAPIDocument())
}
