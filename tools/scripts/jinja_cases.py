#!/usr/bin/env python3
"""Writes tests/KernelEngine.Tests/Text/jinja-cases.jsonl: templates exercising the jinja2 constructs chat templates use,
rendered by Python's jinja2 in transformers' apply_chat_template setup (ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, loopcontrols, tojson = json.dumps(ensure_ascii=False), raise_exception, strftime_now fixed to
2026-07-26 12:34:56). Each line: name, template, vars, and expected or error (the exception's message).
Run: python3 tools/scripts/jinja_cases.py  (needs jinja2 >= 3.1)."""
import json, os, datetime
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols
from jinja2.exceptions import TemplateError

NOW = datetime.datetime(2026, 7, 26, 12, 34, 56)

def raise_exception(message):
    raise TemplateError(message)

def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

def env():
    e = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    e.filters["tojson"] = tojson
    e.globals["raise_exception"] = raise_exception
    e.globals["strftime_now"] = lambda fmt: NOW.strftime(fmt)
    return e

MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "What's 2+2?"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City, e.g. Zürich"}}, "required": ["city"]}}}]
TOOL_MSGS = MSGS[:2] + [{"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                        {"role": "tool", "content": "{\"temp\": 21.5}"}]

CASES = [
    # whitespace control
    ("ws_dash", "a  {{- 'b' -}}  c\n{%- if true -%}\n  d\n{%- endif %}\ne", {}),
    ("ws_lstrip_trim", "x\n    {% if true %}\n    y\n    {% endif %}\nz\n", {}),
    ("ws_plus", "x\n    {%+ if true %}y{% endif %}\n", {}),
    ("ws_comment", "a\n  {# note #}\nb {#- gone -#}   c", {}),
    ("ws_var_not_trimmed", "{{ 'a' }}\n{{ 'b' }}\n", {}),
    ("raw", "{% raw %}{{ not }} {% evaluated %}{% endraw %}!", {}),
    # literals, operators, Python semantics
    ("arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 / 2 }} {{ 6 / 3 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1 + 2.5 }} {{ 3 * 'ab' }}", {}),
    ("float_repr", "{{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1.5e-7 }} {{ 100.0 }} {{ 2.5 | round }} {{ 3.14159 | round(2) }} {{ 1e16 }} {{ 123456.789 }}", {}),
    ("none_bool_str", "{{ none }} {{ true }} {{ false }} {{ x }}|{{ [1, 'a', none, true] }} {{ {'k': 'v', 'n': 1} }} {{ (1,) }} {{ (1, 2) }}", {}),
    ("tilde", "{{ 1 ~ 'a' ~ none ~ true ~ [1] }}", {}),
    ("compare", "{{ 1 < 2 < 3 }} {{ 'a' < 'b' }} {{ [1, 2] == [1, 2] }} {{ 1 == 1.0 }} {{ 'x' in 'xyz' }} {{ 2 not in [1, 3] }} {{ 'k' in {'k': 1} }}", {}),
    ("truthiness", "{% for v in [0, 1, '', 'a', [], [0], {}, none, 0.0] %}{{ 'T' if v else 'F' }}{% endfor %}", {}),
    ("condexpr_no_else", "[{{ 'yes' if false }}]", {}),
    ("string_escapes", "{{ 'a\\nb\\t\"c\"\\'d' }}|{{ \"it's\" }}|{{ 'x' 'y' }}", {}),
    ("unicode", "{{ s | length }} {{ s[0] }} {{ s[::-1] }} {{ s | upper }}", {"s": "Zürich ☃"}),
    # subscripts and slices
    ("slices", "{{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ l[::2] }} {{ l[-1] }} {{ l[10] }}|{{ s[1:3] }} {{ s[-2:] }}", {"l": [1, 2, 3, 4, 5], "s": "hello"}),
    ("attr_item", "{{ m.role }} {{ m['content'] }} {{ m.missing }}|{{ m.missing is defined }} {{ m.get('role') }} {{ m.get('nope', 'dflt') }}", {"m": {"role": "user", "content": "hi"}}),
    # loops
    ("loop_vars", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", {}),
    ("loop_prev_next_cycle", "{% for x in [1, 2, 3] %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.cycle('a', 'b') }} {% endfor %}", {}),
    ("loop_else_filter", "{% for x in [] %}{{ x }}{% else %}empty{% endfor %} {% for x in range(10) if x is odd %}{{ x }}{% endfor %}", {}),
    ("loop_unpack", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {% for k, v in d | dictsort %}{{ k }}{% endfor %} {% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}", {"d": {"b": 2, "a": 1}}),
    ("break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("loop_scope", "{% set n = 0 %}{% for x in [1, 2] %}{% set n = n + x %}{{ n }}{% endfor %}{{ n }}", {}),
    ("namespace", "{% set ns = namespace(total=0, found=false) %}{% for x in [1, 2, 3] %}{% set ns.total = ns.total + x %}{% if x == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.total }} {{ ns.found }}", {}),
    ("nested_loops", "{% for row in rows %}{% for c in row %}{{ loop.index }}{{ c }}{% endfor %}|{{ loop.index }};{% endfor %}", {"rows": [["a", "b"], ["c"]]}),
    ("recursive_loop", "{% for item in tree recursive %}{{ item.name }}{% if item.children %}[{{ loop(item.children) }}]{% endif %}{% endfor %}", {"tree": [{"name": "a", "children": [{"name": "b"}, {"name": "c", "children": [{"name": "d"}]}]}, {"name": "e"}]}),
    # set
    ("set_forms", "{% set a, b = 1, 2 %}{% set t = (3, 4) %}{{ a }}{{ b }}{{ t }}{% set block %}x{{ a }}y{% endset %}[{{ block }}]{% set up | upper %}shout{% endset %}{{ up }}", {}),
    ("set_in_if", "{% if true %}{% set v = 'inner' %}{% endif %}{{ v }}", {}),
    # macros
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(name='C', punct='.') }}", {}),
    ("macro_varargs_caller", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{{ varargs }}{{ kwargs }}{% endmacro %}{% call wrap('b', 1, x=2) %}inside{% endcall %}", {}),
    ("macro_scope", "{% set g = 'global' %}{% macro show() %}{{ g }}{% endmacro %}{{ show() }}", {}),
    # tests
    ("tests", "{{ x is defined }} {{ y is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }} {{ 1 is integer }} {{ 1.0 is float }} {{ {} is mapping }} {{ [] is sequence }} {{ 'a' is sequence }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 1 is sameas 1 }} {{ true is boolean }} {{ x is not none }} {{ 'ab' is lower }} {{ [] is iterable }} {{ 2 is in [1, 2] }} {{ 3 is gt 2 }} {{ 'a' is eq 'a' }} {{ range is callable }}", {"x": 1}),
    # filters
    ("filters_str", "{{ '  a b  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}|{{ 'a-b' | replace('-', '+') }}|{{ 'aaa' | replace('a', 'b', 2) }}|{{ 'abc' | upper }}{{ 'ABC' | lower }}|{{ 'abc' | center(9) }}|{{ 'one two three' | wordcount }}|{{ 'hello world foo' | truncate(9, leeway=0) }}", {}),
    ("filters_seq", "{{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ [1, 2] | first }}{{ [1, 2] | last }} {{ [1, 2, 3] | length }} {{ [1, 2, 2, 1] | unique | list }} {{ [1, 2, 3] | sum }} {{ [4, 2, 8] | min }}{{ [4, 2, 8] | max }} {{ [1, 2, 3] | reverse | list }} {{ 'abc' | list }} {{ [1, 2, 3, 4, 5] | batch(2) | list }} {{ [1, 2, 3] | join('-') }}", {}),
    ("filters_select", "{{ users | selectattr('active') | map(attribute='name') | join(',') }} {{ users | rejectattr('active') | map(attribute='name') | list }} {{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('even') | list }} {{ users | selectattr('name', 'equalto', 'b') | list | length }} {{ ['a', 'B'] | map('upper') | list }} {{ users | map(attribute='age', default=0) | list }}", {"users": [{"name": "a", "active": True, "age": 3}, {"name": "b", "active": False}, {"name": "c", "active": True, "age": 4}]}),
    ("filters_default", "{{ x | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} {{ none | d('n') }} {{ y | d(1) }}", {"y": 0}),
    ("filters_numbers", "{{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ '3.5' | float }} {{ -3 | abs }} {{ 2.7 | int }} {{ '0x1A' | int(base=16) }} {{ 5 | float }}", {}),
    ("filters_indent", "{{ 'a\nb\n\nc' | indent }}|{{ 'a\nb' | indent(2, true) }}|{{ 'a\n\nb' | indent(2, blank=true) }}|{{ 'x' | indent('> ', first=true) }}", {}),
    ("filters_misc", "{{ '%s=%d' | format('a', 3) }} {{ '%05.1f|%-4s|%r' % (3.14159, 'ab', 'q') }} {{ 'x' | string }} {{ 3 | string ~ 'a' }} {{ {'b': 1, 'a': 2} | dictsort }} {{ {'b': 1, 'a': 2} | items | list }} {{ '<b>x</b> y' | striptags }} {{ '<&>' | e }} {{ [1, 2, 3, 4, 5] | slice(2) | list }}", {}),
    ("tojson", "{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ [] | tojson }} {{ {} | tojson(indent=4) }} {{ 'é\"\\\\\n' | tojson }} {{ 1.0 | tojson }} {{ d | tojson(sort_keys=true) }} {{ d | tojson(separators=(',', ':')) }}", {"d": {"name": "Zürich", "n": [1, 2.5, None, True], "nested": {"b": {}}}}),
    ("string_methods", "{{ ' x '.strip() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b  c'.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}|{{ '-'.join(['a', 'b']) }}|{{ 'hello'.find('l') }}|{{ 'Hello World'.lower().title() }}|{{ '{} and {name}'.format(1, name='n') }}|{{ 'abc'.replace('b', '') }}|{{ 'x'.upper() }}|{{ 'line1\nline2\n'.splitlines() }}|{{ 'prefix_rest'.removeprefix('prefix_') }}|{{ '12'.isdigit() }}", {}),
    ("dict_methods", "{{ d.keys() | list }} {{ d.values() | list }} {% for k in d %}{{ k }}{% endfor %} {{ d | length }} {{ dict(a=1, b=2) }} {{ d['a'] }}", {"d": {"a": 1, "b": 2}}),
    ("range_forms", "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(5, 0, -2) | list }} {{ range(0) | list }}", {}),
    ("strftime", "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S') }}|{{ strftime_now('%A %B %-d %j %I %p') }}", {}),
    ("joiner", "{% set j = joiner(', ') %}{% for x in [1, 2, 3] %}{{ j() }}{{ x }}{% endfor %}", {}),
    ("filter_block", "{% filter upper %}shout {{ 'this' }}{% endfilter %}", {}),
    ("generation_passthrough_like", "{% for m in messages %}{{ m.role }}:{{ m.content | trim }}\n{% endfor %}", {"messages": MSGS}),
    ("undefined_print_iterate", "[{{ missing }}][{% for x in missing %}x{% endfor %}][{{ missing | default('d') }}][{{ missing is defined }}][{{ not missing }}]", {}),
    # errors
    ("err_raise", "{% if messages | length > 1 %}{{ raise_exception('Only one message, got ' ~ messages | length) }}{% endif %}", {"messages": MSGS}),
    ("err_undefined_attr", "{{ missing.attr }}", {}),
    ("err_type_add", "{{ 'a' + 1 }}", {}),
    ("err_immutable", "{% set l = [1] %}{{ l.append(2) }}", {}),
    ("err_unknown_filter_runtime", "{{ 'a' | nosuchfilter }}", {}),
    ("err_division", "{{ 1 / 0 }}", {}),
    ("err_range", "{{ range(1000000) | length }}", {}),
    # real-world shaped templates
    ("llama31_tools", """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = strftime_now("%d %b %Y") %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- if tools_in_user_message and not tools is none %}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
""", {"messages": TOOL_MSGS[1:], "tools": TOOLS, "add_generation_prompt": True, "bos_token": "<|begin_of_text|>"}),
    ("mistral_like_tools", """{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}
{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val|tojson }}
                    {%- endif %}
                    {%- if not loop.last %}
                        {{- ", " }}
                    {%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- else %}
                    {{- "]" }}
                {%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
        {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\\n\\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function|tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- else %}
                {{- "]" + eos_token }}
            {%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- elif message["role"] == "tool" %}
        {{- '[TOOL_RESULTS] {"content": ' + message.content|string + ", " }}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
""", {"messages": MSGS[:2] + [{"role": "assistant", "tool_calls": [{"id": "abc123def", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}, {"role": "tool", "tool_call_id": "abc123def", "content": "21"}, {"role": "user", "content": "Thanks"}], "tools": TOOLS, "bos_token": "<s>", "eos_token": "</s>"}),
    ("gemma_like", """{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}""",
        {"messages": MSGS[1:], "add_generation_prompt": True, "bos_token": "<bos>"}),
    ("gemma_like_system_error", """{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}""", {"messages": MSGS, "bos_token": "<bos>"}),
    ("qwen3_like_think", """{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.role == "assistant" %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if '</think>' in content %}
            {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
            {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}""", {"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "<think>\nhmm\n</think>\n\na1"}, {"role": "user", "content": "q2"}], "add_generation_prompt": True, "enable_thinking": False}),
]

def main():
    out = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "KernelEngine.Tests", "Text", "jinja-cases.jsonl")
    e = env()
    with open(out, "w", encoding="utf-8") as f:
        for name, source, variables in CASES:
            case = {"name": name, "template": source, "vars": variables}
            try:
                case["expected"] = e.from_string(source).render(**variables)
            except Exception as ex:  # the engine must raise too, with this message where it is the template's own
                case["error"] = type(ex).__name__
                case["message"] = str(ex)
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
    print(f"{len(CASES)} cases written to {os.path.normpath(out)}")

main()
