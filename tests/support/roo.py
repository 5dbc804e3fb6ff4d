"""A Roo Code-shaped conversation: Roo's 21 native tools, a long system prompt, a tool turn.

The tool names, parameter schemas and strictness follow Roo Code 3.52's native
tools (``src/core/prompts/tools/native-tools/``: every property required,
optional ones typed ``[T, "null"]``, ``additionalProperties: false``); the
wording is our own, written to about the same length, so that the tool set is
about as many tokens as Roo's (~9,200) and the system prompt is Roo-sized
(several thousand tokens: role, tool-use rules, capabilities, modes, rules,
system information, objective).
"""

from __future__ import annotations

import json

NULL_STR = ["string", "null"]


def _tool(name: str, description: str, properties: dict, *, required=None,
          strict: bool = True) -> dict:
    params = {"type": "object", "properties": properties,
              "required": list(properties) if required is None else required,
              "additionalProperties": False}
    # Roo's descriptions restate each parameter ("- path: (required) …").
    recap = "\n".join(f"- {k}: ({'required' if k in params['required'] else 'optional'}) "
                      f"{v.get('description', '')}" for k, v in properties.items())
    fn = {"name": name, "description": f"{description}\n\nParameters:\n{recap}",
          "parameters": params}
    if strict:
        fn["strict"] = True
    return {"type": "function", "function": fn}


def _p(type_, description: str, **more) -> dict:
    return {"type": type_, "description": description, **more}


def _usage(name: str, when: list[str], avoid: list[str], example: dict) -> str:
    """The "when / when not / example" tail most of Roo's tool descriptions carry."""
    lines = [f"\nWhen to use {name}:"] + [f"- {w}" for w in when]
    lines += [f"\nWhen not to use {name}:"] + [f"- {a}" for a in avoid]
    lines += ["\nExample call:", json.dumps({"name": name, "arguments": example}, indent=2),
              f"Call {name} only with arguments you know; every listed parameter must be "
              "present, with null for an optional value you do not set."]
    return "\n".join(lines)


_DIFF_FORMAT = """Each block has this exact shape:
<<<<<<< SEARCH
:start_line:<line number where the searched text begins>
-------
[the exact existing lines to find, whitespace and indentation included]
=======
[the lines that replace them]
>>>>>>> REPLACE
Several blocks may follow one another in the same diff; they are applied top to bottom and
each must match the file as it is after the blocks before it."""

_PATCH_FORMAT = """A patch is enclosed in '*** Begin Patch' and '*** End Patch' and holds file sections:
- '*** Add File: <path>' creates a file; every following line starts with '+'.
- '*** Delete File: <path>' removes a file; nothing follows it.
- '*** Update File: <path>' changes a file in place, optionally followed by
  '*** Move to: <new path>' to rename it, then hunks that start with '@@' (optionally
  followed by the enclosing class or function). In a hunk a line starting with a space is
  context, '-' removes a line and '+' adds one. Show about three lines of context above and
  below each change, and add an '@@ <name>' header when three lines do not identify the place.
Example:
*** Begin Patch
*** Add File: notes/todo.txt
+Write the migration
*** Update File: app/server.py
@@ def handle(request):
-    return respond(request, 200)
+    return respond(request, status=200)
*** Delete File: app/legacy.py
*** End Patch"""

TOOLS: list[dict] = [
    _tool("access_mcp_resource",
          "Read a resource that a connected Model Context Protocol server offers: a document, "
          "an API response, a database row, system information or any other data source the "
          "server exposes under a URI. The resource's content is returned as text so you can "
          "use it as context for the task." + _usage(
              "access_mcp_resource",
              ["The user mentions data that one of the connected servers provides.",
               "A server lists a resource template that matches what you need."],
              ["The information is in the workspace: read the file instead.",
               "No connected server advertises the resource."],
              {"server_name": "weather", "uri": "weather://san-francisco/current"}),
          {"server_name": _p("string", "Name of the MCP server that provides the resource"),
           "uri": _p("string", "URI that identifies the resource on that server")}),
    _tool("apply_diff",
          "Make precise, targeted changes to an existing file with one or more SEARCH/REPLACE "
          "blocks. Use it for surgical edits: the SEARCH part must match the current content "
          "exactly, including whitespace and indentation, so read the file first when you are "
          "not certain of its exact text. To change several places, give several blocks in one "
          "diff rather than calling the tool several times.\n" + _DIFF_FORMAT + _usage(
              "apply_diff",
              ["You change a few lines of a large file.",
               "You know the exact current text of the lines you replace."],
              ["You rewrite most of a file: use write_to_file.",
               "You create a new file."],
              {"path": "src/utils.ts", "diff": "<<<<<<< SEARCH\n:start_line:12\n-------\n"
               "return a+b\n=======\nreturn a + b\n>>>>>>> REPLACE"}),
          {"path": _p("string", "Path of the file to modify, relative to the workspace"),
           "diff": _p("string", "One or more SEARCH/REPLACE blocks; ':start_line:' is required "
                                "in each SEARCH part and must not appear in the replacement")},
          strict=False),
    _tool("apply_patch",
          "Apply a patch in a compact, file-oriented diff format that can create, delete, "
          "rename and update files in one call.\n" + _PATCH_FORMAT + _usage(
              "apply_patch",
              ["A change spans several files.", "You add and delete files together."],
              ["A single small edit: apply_diff or edit is simpler."],
              {"patch": "*** Begin Patch\n*** Delete File: old.txt\n*** End Patch"}),
          {"patch": _p("string", "The complete patch text, from '*** Begin Patch' to "
                                 "'*** End Patch'")},
          strict=False),
    _tool("ask_followup_question",
          "Ask the user a question when you need information to go on: an ambiguity in the "
          "request, a choice between approaches, a detail only the user knows. Ask one clear, "
          "specific question and offer two to four suggested answers the user can pick with one "
          "click; every suggestion must be a complete, actionable answer without placeholders "
          "the user would have to fill in. A suggestion may name a mode to switch to when it is "
          "chosen. Use this tool sparingly: prefer finding the answer with the other tools, "
          "for example by reading files or searching the workspace." + _usage(
              "ask_followup_question",
              ["The request has two reasonable readings and they lead to different work.",
               "You need a value (a port, a path, a name) that is nowhere in the workspace."],
              ["You could find the answer by reading or searching files.",
               "You only want approval: the user approves tool uses already."],
              {"question": "Which database should the service use?",
               "follow_up": [{"text": "PostgreSQL", "mode": None},
                             {"text": "SQLite for now", "mode": None}]}),
          {"question": _p("string", "A clear, specific question about the information you need"),
           "follow_up": {"type": "array", "description": "Two to four suggested answers",
                         "items": {"type": "object", "properties": {
                             "text": _p("string", "A suggested answer the user can pick"),
                             "mode": _p(NULL_STR, "Mode slug to switch to when this answer is "
                                                  "chosen (e.g. code, architect), or null")},
                                   "required": ["text", "mode"], "additionalProperties": False}}}),
    _tool("attempt_completion",
          "Present the result of your work once the task is done. After every tool use the "
          "user answers with its outcome: whether it succeeded or failed and why. Only when the "
          "results confirm that the task is complete, call this tool with a final summary of "
          "what you did. Phrase the result so that it needs no further input: do not end it "
          "with a question or an offer of more help. The user may reply with feedback, which "
          "you then use to improve the work and try again. Never call this tool before you have "
          "confirmed that earlier tool uses succeeded; doing so can leave the workspace broken "
          "while you report success." + _usage(
              "attempt_completion",
              ["Every step of the task is done and verified."],
              ["A tool use is still unconfirmed.", "You still have open questions."],
              {"result": "Added input validation to the signup form and its tests."}),
          {"result": _p("string", "The final result to show the user")}),
    _tool("codebase_search",
          "Find the files most relevant to a question with a semantic search of the workspace "
          "index: results match meaning, not exact text, so describe what the code does rather "
          "than guessing identifiers. Reuse the user's own wording unless there is a clear "
          "reason not to; queries must be in English (translate if needed). Each result names a "
          "file, a line range and a similarity score. Run this search first when exploring code "
          "you have not seen, before search_files or read_file." + _usage(
              "codebase_search",
              ["You do not know where a feature is implemented.",
               "You look for code by its behaviour, e.g. 'where are sessions expired'."],
              ["You know the exact text: search_files with a regex is more precise."],
              {"query": "where are user sessions expired", "path": None}),
          {"query": _p("string", "A meaning-based description of the code you look for"),
           "path": _p(NULL_STR, "Subdirectory to limit the search to, or null for the whole "
                                "workspace")}),
    _tool("execute_command",
          "Run a command line on the user's system to carry out a step of the task: build, "
          "test, install, inspect. Tailor the command to the user's operating system and shell, "
          "explain what it does, and use the shell's own syntax to chain commands. Prefer one "
          "complex command line over writing a script. Prefer relative paths so the command "
          "does not depend on the terminal's directory; to run elsewhere, set cwd. Interactive "
          "and long-running commands are allowed: the output collected so far is returned when "
          "the timeout passes and the command keeps running in the background." + _usage(
              "execute_command",
              ["Running tests or a build.", "Installing a dependency the task needs.",
               "Inspecting the system (versions, environment)."],
              ["Reading a file: read_file shows line numbers.",
               "Listing files: list_files is faster and needs no approval."],
              {"command": "npm test -- --watch=false", "cwd": None, "timeout": None}),
          {"command": _p("string", "The command line to run"),
           "cwd": _p(NULL_STR, "Working directory, relative or absolute, or null"),
           "timeout": _p(["number", "null"], "Seconds after which output is returned while the "
                                             "command goes on in the background, or null")}),
    _tool("generate_image",
          "Create an image from a text prompt, or edit an existing image following your "
          "instructions, with an image model, and save the result in the workspace. When an "
          "input image is given, the requested edits, transformations or enhancements are "
          "applied to it. The right file extension is added to the path when missing." + _usage(
              "generate_image",
              ["The user asks for an icon, an illustration or a mock-up."],
              ["A diagram that can be written as text (Mermaid, SVG source)."],
              {"prompt": "a flat blue app icon with a white cloud", "path": "assets/icon",
               "image": None}),
          {"prompt": _p("string", "What to generate, or how to edit the input image"),
           "path": _p("string", "Where to save the result, relative to the workspace"),
           "image": _p(NULL_STR, "An existing image to edit (PNG, JPG, JPEG, GIF or WEBP), "
                                 "or null")}),
    _tool("list_files",
          "List the files and directories in a directory. With recursive true every level "
          "below is listed; with false only the top level. Do not use it to check that files "
          "you created exist: the user tells you whether a write succeeded." + _usage(
              "list_files",
              ["Getting an overview of an unfamiliar project.",
               "Finding where a kind of file lives (tests, configuration)."],
              ["Confirming your own writes."],
              {"path": "src", "recursive": False}),
          {"path": _p("string", "Directory to list, relative to the workspace"),
           "recursive": _p("boolean", "true to list every level, false for the top level")}),
    _tool("new_task",
          "Start a new task in a chosen mode with your message as its first instruction and, "
          "where the workspace requires it, an initial todo list. The new task runs on its own "
          "and reports back when done; use it to hand off a well-defined piece of work, such as "
          "writing the tests for a module while you continue the design." + _usage(
              "new_task",
              ["A sub-problem is independent and needs a different mode."],
              ["The work is a single small step you can do now."],
              {"mode": "code", "message": "Implement the parser described in docs/parser.md",
               "todos": None}),
          {"mode": _p("string", "Slug of the mode to start in (e.g. code, debug, architect)"),
           "message": _p("string", "The instructions and context for the new task"),
           "todos": _p(NULL_STR, "An initial markdown checklist, or null")}),
    _tool("read_command_output",
          "Retrieve the full output of a command whose output execute_command truncated. The "
          "truncated output names an artifact file; pass its name here, optionally with a "
          "pattern to keep matching lines only (case-insensitive, like grep), and page through "
          "long output with offset and limit." + _usage(
              "read_command_output",
              ["A test run's output was cut and you need the failures.",
               "You need lines matching an error message in a long build log."],
              ["The output was not truncated."],
              {"artifact_id": "cmd-1706119234567.txt", "search": "FAILED"}),
          {"artifact_id": _p("string", "Artifact file name from the truncated output"),
           "search": _p("string", "Pattern that output lines must match"),
           "offset": _p("number", "Byte offset to start reading at (default 0)"),
           "limit": _p("number", "Most bytes to return (default 40 KB)")},
          required=["artifact_id"], strict=False),
    _tool("read_file",
          "Read one file and return its contents with line numbers, for editing or discussion. "
          "This tool reads exactly one file per call: to read several, issue several read_file "
          "calls in parallel. Two modes: 'slice' (the default) returns lines from offset up to "
          "limit, good for a first look, configuration and data files, or a known line range; "
          "'indentation' returns the whole code block around an anchor line, following the "
          "indentation hierarchy, so a function or class is never cut in the middle. Prefer "
          "indentation mode when a search result, a stack trace or a definition gave you a line "
          "number; without an anchor line it returns only the file header (imports). At most "
          "2000 lines are returned per call and lines longer than 2000 characters are cut. PDF "
          "and DOCX files are converted to text; other binary files may not read well." + _usage(
              "read_file",
              ["Before editing a file.", "To answer a question about code you have not seen.",
               "To see the whole function around a line from a stack trace."],
              ["To list a directory: use list_files."],
              {"path": "src/app.ts", "mode": "indentation", "offset": None, "limit": None,
               "indentation": {"anchor_line": 42, "max_levels": None, "include_siblings": None,
                               "include_header": None, "max_lines": None}}),
          {"path": _p("string", "Path of the file, relative to the workspace"),
           "mode": {"type": NULL_STR, "enum": ["slice", "indentation", None],
                    "description": "'slice' (default) reads lines in order; 'indentation' "
                                   "extracts the code block around indentation.anchor_line"},
           "offset": _p(["integer", "null"], "First line to read, 1-based (slice mode)"),
           "limit": _p(["integer", "null"], "Most lines to return (slice mode, default 2000)"),
           "indentation": {"type": ["object", "null"],
                           "description": "Options of indentation mode",
                           "properties": {
                               "anchor_line": _p(["integer", "null"],
                                                 "1-based line the extracted block contains"),
                               "max_levels": _p(["integer", "null"],
                                                "Parent levels to include (0: all)"),
                               "include_siblings": _p(["boolean", "null"],
                                                      "Include blocks at the same level"),
                               "include_header": _p(["boolean", "null"],
                                                    "Include imports and file comments"),
                               "max_lines": _p(["integer", "null"], "Hard cap on lines")},
                           "required": ["anchor_line", "max_levels", "include_siblings",
                                        "include_header", "max_lines"],
                           "additionalProperties": False}}),
    _tool("run_slash_command",
          "Run a slash command to get instructions or content for a common task. Slash commands "
          "are predefined templates (for example init, test, deploy) that the user or the "
          "project defined." + _usage(
              "run_slash_command", ["The user refers to a command by its slash name."],
              ["No such command is listed."], {"command": "init", "args": None}),
          {"command": _p("string", "Name of the slash command (e.g. init, test, deploy)"),
           "args": _p(NULL_STR, "Extra context or arguments for the command, or null")}),
    _tool("skill",
          "Load a skill by name and follow its instructions. Skills are packaged instructions "
          "for specialised tasks such as creating an MCP server or a custom mode; the name must "
          "be one of the available skills listed in the system prompt." + _usage(
              "skill", ["The task matches a listed skill's description."],
              ["No listed skill fits."], {"skill": "create-mcp-server", "args": None}),
          {"skill": _p("string", "Name of the skill (e.g. create-mcp-server, create-mode)"),
           "args": _p(NULL_STR, "Context or arguments for the skill, or null")}),
    _tool("search_replace",
          "Replace one occurrence of a piece of text in an existing file. old_string must occur "
          "exactly once in the file: include enough surrounding lines (three to five before and "
          "after) to make it unique, with whitespace and indentation exactly as in the file. "
          "To change several places, call the tool once per place. The file must have been "
          "read in this conversation before it is edited." + _usage(
              "search_replace", ["Changing one function's body or one configuration value."],
              ["Creating a file: use write_to_file."],
              {"file_path": "src/config.py", "old_string": "DEBUG = True",
               "new_string": "DEBUG = False"}),
          {"file_path": _p("string", "Path of the file to change"),
           "old_string": _p("string", "The text to replace; it must occur exactly once"),
           "new_string": _p("string", "The text that replaces it")},
          strict=False),
    _tool("edit_file",
          "Replace text in an existing file, or create a new file when old_string is empty. By "
          "default old_string must occur exactly once; set expected_replacements to replace a "
          "known number of occurrences. Keep whitespace and indentation exactly as in the file, "
          "and include enough context that the match is unambiguous. Read the file first." +
          _usage("edit_file", ["A change of a few lines in one place."],
                 ["Rewriting a whole file."],
                 {"file_path": "README.md", "old_string": "## Setup", "new_string":
                  "## Installation", "expected_replacements": 1}),
          {"file_path": _p("string", "Path of the file to change or create"),
           "old_string": _p("string", "Text to replace (empty to create the file)"),
           "new_string": _p("string", "Replacement text, or the new file's content"),
           "expected_replacements": _p("number", "How many occurrences to replace (default 1)")},
          required=["file_path", "old_string", "new_string"], strict=False),
    _tool("edit",
          "Perform exact string replacements in a file. Always prefer editing existing files "
          "to writing new ones. The edit fails when old_string is not unique in the file: give "
          "more surrounding context, or set replace_all to change every occurrence (for "
          "renaming a variable, say). Preserve the exact indentation that follows the line "
          "number prefix of read_file's output; never include the prefix itself." + _usage(
              "edit", ["Renaming an identifier throughout a file (replace_all)."],
              ["The file has not been read yet."],
              {"file_path": "src/main.go", "old_string": "oldName", "new_string": "newName",
               "replace_all": True}),
          {"file_path": _p("string", "Path of the file to modify"),
           "old_string": _p("string", "The exact text to replace"),
           "new_string": _p("string", "The text to put in its place (must differ)"),
           "replace_all": _p("boolean", "Replace every occurrence (default false)")},
          required=["file_path", "old_string", "new_string"], strict=False),
    _tool("search_files",
          "Search the files below a directory for a regular expression (Rust regex syntax) and "
          "return every match with a few lines of context around it. Narrow the search with a "
          "glob over file names. Good for finding usages, TODO comments, function definitions "
          "and error messages when you know the text." + _usage(
              "search_files", ["Finding all callers of a function by name."],
              ["Searching by meaning: use codebase_search."],
              {"path": "src", "regex": "def\\s+handle_", "file_pattern": "*.py"}),
          {"path": _p("string", "Directory to search recursively, relative to the workspace"),
           "regex": _p("string", "Regular expression to match (Rust syntax)"),
           "file_pattern": _p(NULL_STR, "Glob that file names must match (e.g. *.ts), or null")}),
    _tool("switch_mode",
          "Ask to switch to another mode, for example to Code mode to make changes planned in "
          "Architect mode. The user must approve the switch." + _usage(
              "switch_mode", ["The next step needs tools this mode does not allow."],
              ["You can finish in the current mode."],
              {"mode_slug": "code", "reason": "The plan is ready; implementing it needs edits."}),
          {"mode_slug": _p("string", "Slug of the mode to switch to (e.g. code, ask, architect)"),
           "reason": _p("string", "Why the switch is needed")}),
    _tool("update_todo_list",
          "Replace the whole todo list with an updated checklist of the task's state. Always "
          "give the full list: it overwrites the previous one. Use it to track a task step by "
          "step: confirm each step before updating, change several statuses at once (finish "
          "one, start the next), and add items discovered while working. Use [ ] for pending, "
          "[x] for completed and [-] for in progress, in execution order." + _usage(
              "update_todo_list",
              ["A task has several steps.", "You finished a step or discovered a new one."],
              ["A one-step task."],
              {"todos": "[x] Read the failing test\n[-] Fix the parser\n[ ] Run the suite"}),
          {"todos": _p("string", "The full markdown checklist")}),
    _tool("write_to_file",
          "Write a file: create it, or replace an existing file's whole content. Directories "
          "are created as needed. Always give the complete intended content without truncation "
          "or omissions, including the parts you did not change, and never include line "
          "numbers. For changes to part of an existing file prefer apply_diff or edit: they "
          "are faster and cannot lose the parts you left out." + _usage(
              "write_to_file", ["Creating a new file.", "A rewrite of most of a file."],
              ["Changing a few lines of a large file."],
              {"path": "scripts/hello.sh", "content": "#!/bin/sh\necho hello\n"}),
          {"path": _p("string", "Path of the file to write, relative to the workspace"),
           "content": _p("string", "The complete content of the file")}),
]

_SECTIONS = {
    "TOOL USE": [
        "You have access to a set of tools that are executed upon the user's approval. Use the "
        "provider-native tool-calling mechanism; do not write tool calls as XML or text.",
        "You must call at least one tool in every response. Text-only answers are returned to "
        "you as an error. When the task is done, call attempt_completion.",
        "You may call several tools in one response when they do not depend on each other, "
        "such as reading three files. When one call needs another's result, wait for it.",
        "Every tool result arrives in the user's next message; read it carefully before going "
        "on. A failed tool use explains why it failed: fix the cause, do not repeat it.",
    ],
    "TOOL USE GUIDELINES": [
        "Assess what information you already have and what you still need to go on.",
        "Choose the most appropriate tool for each step. Listing a directory with list_files "
        "is better than running ls; a semantic codebase_search beats guessing file names.",
        "Work step by step: one logical step per response, each informed by the result of the "
        "step before. Do not assume a tool use succeeded until you see its result.",
        "Formulate tool uses precisely: exact paths relative to the workspace, exact text in "
        "search blocks, complete file contents when writing.",
        "After each tool use the user reports linter errors, test failures and other feedback "
        "that you must address before moving on.",
    ],
    "CAPABILITIES": [
        "You can run commands on the user's computer, list files, view source code definitions, "
        "search with regular expressions, read and write files, and ask follow-up questions.",
        "When the task starts you get a recursive listing of the workspace directory, which "
        "gives an overview of the project's structure; list_files explores further.",
        "codebase_search finds code by meaning and is the best first step for unfamiliar code; "
        "search_files finds exact patterns with their context.",
        "execute_command runs in a terminal the user can see; long-running processes keep "
        "running in the background and their output is available later.",
        "You can connect to MCP servers that add tools and resources, and start sub-tasks in "
        "other modes with new_task.",
    ],
    "MODES": [
        "Code mode (code): writes, modifies and refactors code in any language or framework.",
        "Architect mode (architect): plans and designs before implementation; writes plans as "
        "markdown files and asks to switch to Code mode to implement them.",
        "Ask mode (ask): answers questions, explains code and concepts; does not edit files.",
        "Debug mode (debug): diagnoses problems systematically, adds logging, finds root causes.",
        "Orchestrator mode (orchestrator): splits complex work into sub-tasks for other modes.",
    ],
    "RULES": [
        "The workspace directory is /home/dev/projects/shop-api; all paths are relative to it.",
        "You cannot cd into another directory to complete a task; use the cwd parameter.",
        "Do not use ~ or $HOME to refer to the home directory.",
        "Before running a command, consider the user's system information below and make sure "
        "the command suits their shell and operating system.",
        "When you create a project, organise its files in a dedicated directory unless the user "
        "says otherwise, and follow the conventions of the language and framework.",
        "When making changes to code, consider the context in which the code is used and keep "
        "your changes compatible with the existing codebase and its standards.",
        "Do not ask for more information than necessary; use the tools to find it yourself.",
        "Your goal is to accomplish the task, not to engage in a conversation. Never end "
        "attempt_completion's result with a question or a request for further conversation.",
        "Never start a message with 'Great', 'Certainly', 'Okay' or 'Sure'; be direct and "
        "technical.",
        "When you are shown images, examine them carefully and use what you see in them.",
        "Environment details at the end of each user message are context, not a request; use "
        "them to inform your actions but do not assume the user asked about them.",
        "Before executing a command, check 'Actively Running Terminals' in the environment "
        "details: a dev server may already be running.",
        "Wait for the user's answer after each tool use before you go on.",
    ],
    "MARKDOWN RULES": [
        "Show every language construct or file name reference as a clickable link, e.g. "
        "[`Order.total()`](src/orders.py:42); this applies to all markdown responses, "
        "including those inside attempt_completion.",
    ],
    "MCP SERVERS": [
        "The Model Context Protocol lets you talk to servers that provide extra tools and "
        "resources. Connected servers:",
        "github (`npx -y @modelcontextprotocol/server-github`): tools create_issue, "
        "list_pull_requests, get_file_contents, search_code; resources repo://{owner}/{name}.",
        "postgres (`uvx mcp-server-postgres postgresql://localhost/shop`): tools query, "
        "list_tables, describe_table; resources postgres://shop/{table}/schema.",
        "docs (`node /home/dev/mcp/docs/index.js`): tools search_docs, get_page; resources "
        "docs://{section}/{page}.",
    ],
    "SKILLS": [
        "create-mcp-server: scaffold, build and register a new MCP server.",
        "create-mode: define a custom mode with its own role, tools and rules.",
        "write-release-notes: collect merged changes since the last tag into release notes.",
    ],
    "SYSTEM INFORMATION": [
        "Operating System: Linux 6.8; default shell: /bin/bash; home directory: /home/dev; "
        "current workspace directory: /home/dev/projects/shop-api.",
    ],
    "OBJECTIVE": [
        "Analyse the task and set clear, achievable goals in a logical order.",
        "Work through the goals one at a time, using one tool per step as needed.",
        "Before calling a tool, think about which tool fits and whether every required "
        "parameter is known or can be inferred; if a required value is missing, ask for it "
        "with ask_followup_question instead of calling the tool with a guess.",
        "When the task is complete, present the result with attempt_completion; you may show a "
        "command that demonstrates it, such as opening the built page.",
    ],
}

_LANGUAGE_NOTES = [
    "Python: follow PEP 8, use type hints on public functions, prefer dataclasses for plain "
    "records, keep modules small and import them by their package path.",
    "TypeScript: strict mode is on; avoid any, prefer interfaces for object shapes and union "
    "types for closed sets of values; tests use vitest.",
    "SQL migrations live in migrations/ and are numbered; never edit a migration that has "
    "been applied, add a new one.",
    "HTTP handlers validate their input with the schema in schemas/ and answer errors as "
    "JSON objects with a code and a message.",
    "Commit messages start with the area in brackets, e.g. [orders], and describe why.",
]


_AREAS = {
    "orders": "order creation, line items, discounts and totals; money is Decimal, never float",
    "customers": "customer accounts, addresses and consent flags; personal data is never logged",
    "catalog": "products, variants and prices; prices are per currency and versioned",
    "payments": "payment intents and refunds through the provider SDK; every call is idempotent",
    "shipping": "rates, labels and tracking; carriers are behind one interface in carriers.py",
    "invoices": "invoice numbering and PDF rendering; numbers are gapless per fiscal year",
    "auth": "sessions, API keys and roles; all checks go through auth.require()",
    "search": "the product search index; rebuilt by a nightly job, updated on catalog changes",
    "reports": "read-only aggregates on a replica; queries must not lock tables",
    "notifications": "e-mail and webhooks from a queue; handlers must be safe to run twice",
}


def system_prompt() -> str:
    """A Roo-sized system prompt: Roo's sections, in our words, with project instructions."""
    parts = ["You are Roo, a highly skilled software engineer with extensive knowledge in many "
             "programming languages, frameworks, design patterns and best practices."]
    for title, items in _SECTIONS.items():
        parts.append("=" * 6 + f"\n\n{title}\n\n" + "\n".join(f"- {i}" for i in items))
    parts.append("=" * 6 + "\n\nUSER'S CUSTOM INSTRUCTIONS\n\nLanguage preference: English.\n"
                 "Rules from .roo/rules/:\n" + "\n".join(f"- {n}" for n in _LANGUAGE_NOTES) +
                 "\nProject layout (from .roo/rules/layout.md):\n" +
                 "\n".join(f"- src/{k}/: {v}. Its tests are in tests/{k}/ and run with "
                           f"`pytest tests/{k}`; its routes are registered in src/{k}/routes.py."
                           for k, v in _AREAS.items()))
    return "\n\n".join(parts)


_SOURCE = "\n".join(
    f"{i + 1} | " + line for i, line in enumerate(
        (["from decimal import Decimal", "", "", "class Order:",
          "    def __init__(self, items):", "        self.items = list(items)", ""] +
         [f"    def line_{k}(self):\n        return sum(i.price for i in self.items[{k}:])\n"
          for k in range(40)])))

TASK = ("<task>\nThe order total is wrong when an order has a discount. Find the cause in "
        "src/orders.py and fix it.\n</task>")
_PACKAGES = ["orders", "customers", "catalog", "payments", "shipping", "invoices", "auth",
             "search", "reports", "notifications"]
_FILES = (["README.md", "pyproject.toml", "Makefile", ".gitignore", "docker-compose.yml"] +
          [f"src/{p}/{f}" for p in _PACKAGES for f in ("__init__.py", "models.py", "routes.py",
                                                        "service.py", "schemas.py")] +
          [f"tests/{p}/test_{f}.py" for p in _PACKAGES for f in ("models", "routes", "service")] +
          [f"migrations/{i:04d}_{p}.sql" for i, p in enumerate(_PACKAGES * 2)])
ENVIRONMENT = ("<environment_details>\n# VSCode Visible Files\nsrc/orders.py\n\n"
               "# VSCode Open Tabs\nsrc/orders.py, tests/orders/test_service.py\n\n"
               "# Current Time\n2026-12-04T10:00:00Z\n\n# Current Mode\n<slug>code</slug>\n"
               "<name>Code</name>\n\n# Current Workspace Directory "
               "(/home/dev/projects/shop-api) Files\n" + "\n".join(_FILES) +
               "\n</environment_details>")


def openai_messages() -> list[dict]:
    """A second Roo turn: task, Roo's read_file call, and the tool's result."""
    call = {"id": "call_roo_read_1", "type": "function", "function": {
        "name": "read_file", "arguments": json.dumps({"path": "src/orders.py", "mode": None,
                                                      "offset": None, "limit": None,
                                                      "indentation": None})}}
    return [
        {"role": "system", "content": system_prompt()},
        {"role": "user", "content": [{"type": "text", "text": TASK},
                                     {"type": "text", "text": ENVIRONMENT}]},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"],
         "content": f"File: src/orders.py\n{_SOURCE}"},
    ]


def ollama_messages() -> list[dict]:
    """The same turn as Roo's Ollama provider sends it: string content, call without id,
    the tool result as a user message."""
    return [
        {"role": "system", "content": system_prompt()},
        {"role": "user", "content": f"{TASK}\n\n{ENVIRONMENT}"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {
            "name": "read_file", "arguments": {"path": "src/orders.py"}}}]},
        {"role": "user", "content": f"File: src/orders.py\n{_SOURCE}"},
    ]


def ollama_tools() -> list[dict]:
    """Roo's Ollama provider sends the same tools, without ``strict``."""
    out = []
    for t in TOOLS:
        fn = {k: v for k, v in t["function"].items() if k != "strict"}
        out.append({"type": "function", "function": fn})
    return out


SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
