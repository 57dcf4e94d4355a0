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
// missing keys render as zero values.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
	"time"
)

type toolCallFunction struct {
	Index     int
	Name      string
	Arguments map[string]any
}

type toolCall struct {
	ID       string
	Function toolCallFunction
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
	Tools    []any     `json:"tools"`
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
