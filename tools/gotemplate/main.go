// Renders an Ollama Modelfile TEMPLATE the way Ollama's chat endpoint does, with Go's own
// text/template, so the tests judge the app's Modelfiles by Go rather than by a re-implementation.
//
// Stdin: {"template": "...", "system": "Modelfile SYSTEM", "messages": [{"role", "content", ...}],
// "tools": [...], "think": false}. Stdout: the prompt Ollama would hand the model.
//
// Mirrors github.com/ollama/ollama (template/template.go, server/routes.go at fb30760): the
// Modelfile SYSTEM goes first when the chat has no system message, consecutive messages of one
// role are joined with a blank line (collate), .System is every system message joined, the
// function map is json, currentDate, yesterdayDate (slice, len, eq... are Go's builtins), and
// missing keys render as zero values. Tools and tool-call arguments print themselves as Ollama's
// api types do (String() is json.Marshal: compact JSON), in api.Tool's field order down to the
// parameters; the properties and the arguments keep the order they came in, as Ollama's ordered
// maps do.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
	"time"
)

// raw is a JSON value kept as it came; it prints as json.Marshal writes it (compact, <>& escaped).
type raw json.RawMessage

func (r *raw) UnmarshalJSON(b []byte) error { *r = append(raw(nil), b...); return nil }
func (r raw) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}
func (r raw) String() string { b, _ := json.Marshal(r); return string(b) }

// arguments is api.ToolCallFunctionArguments: an object, "{}" when there is none.
type arguments struct{ raw }

func (a arguments) MarshalJSON() ([]byte, error) {
	if len(bytes.TrimSpace(a.raw)) == 0 || bytes.Equal(bytes.TrimSpace(a.raw), []byte("null")) {
		return []byte("{}"), nil
	}
	return a.raw, nil
}
func (a arguments) String() string { b, _ := json.Marshal(a); return string(b) }

type toolFunctionParameters struct {
	Type       string   `json:"type"`
	Defs       any      `json:"$defs,omitempty"`
	Items      any      `json:"items,omitempty"`
	Required   []string `json:"required,omitempty"`
	Properties raw      `json:"properties"`
}

type toolFunction struct {
	Name        string                 `json:"name"`
	Description string                 `json:"description,omitempty"`
	Parameters  toolFunctionParameters `json:"parameters"`
}

func (t toolFunction) String() string { b, _ := json.Marshal(t); return string(b) }

type tool struct {
	Type     string       `json:"type"`
	Items    any          `json:"items,omitempty"`
	Function toolFunction `json:"function"`
}

func (t tool) String() string { b, _ := json.Marshal(t); return string(b) }

type tools []tool

func (t tools) String() string { b, _ := json.Marshal(t); return string(b) }

type toolCallFunction struct {
	Index     int       `json:"index"`
	Name      string    `json:"name"`
	Arguments arguments `json:"arguments"`
}

type toolCall struct {
	ID       string           `json:"id"`
	Function toolCallFunction `json:"function"`
}

type message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	Thinking   string     `json:"thinking"`
	ToolCalls  []toolCall `json:"tool_calls"`
	ToolName   string     `json:"tool_name"`
	ToolCallID string     `json:"tool_call_id"`
}

type request struct {
	Template string    `json:"template"`
	System   string    `json:"system"`
	Messages []message `json:"messages"`
	Tools    tools     `json:"tools"`
	Think    bool      `json:"think"`
}

var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
	"currentDate": func(args ...string) string {
		return time.Now().Format("2006-01-02")
	},
	"yesterdayDate": func(args ...string) string {
		return time.Now().AddDate(0, 0, -1).Format("2006-01-02")
	},
}

// collate is Ollama's: the system text, and the messages with same-role neighbours joined.
func collate(msgs []message) (string, []*message) {
	var system []string
	var collated []*message
	for i := range msgs {
		if msgs[i].Role == "system" {
			system = append(system, msgs[i].Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == msgs[i].Role && msgs[i].Role != "tool" {
			collated[len(collated)-1].Content += "\n\n" + msgs[i].Content
		} else {
			collated = append(collated, &msgs[i])
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func run() error {
	var req request
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(req.Template)
	if err != nil {
		return err
	}
	msgs := req.Messages
	if req.System != "" && (len(msgs) == 0 || msgs[0].Role != "system") {
		msgs = append([]message{{Role: "system", Content: req.System}}, msgs...)
	}
	system, collated := collate(msgs)
	return tmpl.Execute(os.Stdout, map[string]any{
		"System":     system,
		"Messages":   collated,
		"Tools":      req.Tools,
		"Response":   "",
		"Think":      req.Think,
		"ThinkLevel": "",
		"IsThinkSet": req.Think,
	})
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
