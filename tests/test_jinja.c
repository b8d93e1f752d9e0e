/* Template engine tests: each feature real chat templates use, as a small template with
 * variables and the rendering real Jinja2 (set up as Hugging Face does) gives; then bad
 * templates, which must fail with a position, within the budgets and without crashing. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat/jinja.h"
#include "core/status.h"
#include "t.h"

static const char *const vars_json[] = {
    "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi 'there'\"}, {\"role\": \"assistant\", \"content\": \"Yo\\n\"}], \"d\": {\"b\": 2, \"a\": 1, \"C\": 3}, \"l\": [3, 1, 2], \"s\": \"  Hello World  \", \"n\": null, \"f\": 1.5, \"u\": \"héllo wörld\"}",
    "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\", \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {\"x\": 1}}}]}], \"d\": {\"k\": {\"n\": [1, 2]}}, \"tools\": null}",
};

typedef struct render_case {
    const char *tmpl;
    int vars;
    const char *expected;
} render_case;

/* Expected renderings produced by Jinja2 3.1 with trim_blocks, lstrip_blocks, the immutable
 * sandbox, loopcontrols, and tojson/strftime_now/raise_exception as transformers defines them. */
static const render_case cases[] = {
    {"{{ 1 + 2 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}|{{ 7 / 2 }}|{{ 6 / 2 }}|{{ 1.0 }}|{{ 0.1 + 0.2 }}|{{ 1e-5 }}|{{ 1e16 }}|{{ 123456789.123 }}",
     0, "3|3|-4|1|2|1024|3.5|3.0|1.0|0.30000000000000004|1e-05|1e+16|123456789.123"},
    {"{{ True }} {{ none }} {{ [1, 'a', \"b'c\", none, true, 1.5] }} {{ {'a': 1, 'b': [2]} }} {{ (1,) }} {{ (1, 2) }}",
     0, "True None [1, 'a', \"b'c\", None, True, 1.5] {'a': 1, 'b': [2]} (1,) (1, 2)"},
    {"{{ 'a' ~ 1 ~ none ~ true }}|{{ 'ab' * 3 }}|{{ [1] + [2] }}|{{ 'x' in 'xyz' }}|{{ 2 in l }}|{{ 'a' in d }}|{{ 'z' not in d }}",
     0, "a1NoneTrue|ababab|[1, 2]|True|True|True|True"},
    {"{{ 1 == 1.0 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 4 }} {{ 'a' < 'b' }} {{ [1,2] < [1,3] }} {{ none == none }} {{ true == 1 }}",
     0, "True True False True True True True"},
    {"{{ 0 or 'x' }}|{{ 'a' and 'b' }}|{{ '' and 'b' }}|{{ not 0 }}|{{ none or [] }}|{{ 'y' if 0 else 'n' }}|{{ 'y' if 0 }}|",
     0, "x|b||True|[]|n||"},
    {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in d %}{{ k }}{% endfor %}|{% for c in 'héy' %}[{{ c }}]{% endfor %}",
     0, "b=2;a=1;C=3;|baC|[h][é][y]"},
    {"{% for x in l if x > 1 %}{{ x }}{{ loop.length }}{% else %}none{% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %}",
     0, "3222|empty"},
    {"{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}",
     0, "0134"},
    {"{% set x = 1 %}{% for i in range(3) %}{% set x = i %}{% endfor %}{{ x }}|{% set ns = namespace(x=1) %}{% for i in range(3) %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }}",
     0, "1|4"},
    {"{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c, d = [3, 4] %}{{ c }}{{ d }}",
     0, "1234"},
    {"{% macro m(a, b=2, c='x') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }}|{{ m(1, 3) }}|{{ m(1, c='y') }}|{{ m(a=5) }}",
     0, "1-2-x|1-3-x|1-2-y|5-2-x"},
    {"{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}",
     0, "54321"},
    {"{% set x %}inner {{ 1 + 1 }}{% endset %}[{{ x }}]{% filter upper %}abc {{ 'd' }}{% endfilter %}",
     0, "[inner 2]ABC D"},
    {"{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ s.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}|{{ '  a  b '.rsplit(None, 1) }}|{{ ' a b  '.split(None, 1) }}",
     0, "Hello World|Hello World  |  Hello World|hi|['Hello', 'World']|['a', 'b', '', 'c']|['a', 'b c']|['a b', 'c']|['  a', 'b']|['a', 'b  ']"},
    {"{{ 'abc'.startswith('a') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'aaa'.replace('a', 'b', 2) }}{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}{{ 'hello world'.title() }}{{ 'hELLO'.capitalize() }}",
     0, "TrueTruebbaHIhiHello WorldHello"},
    {"{{ 'hello'.find('l') }}{{ 'hello'.rfind('l') }}{{ 'hello'.index('e') }}{{ 'hello'.count('l') }}{{ '{} and {}'.format(1, 'b') }}{{ '{0}{1}{0}'.format('a', 'b') }}{{ '{name}!'.format(name='x') }}{{ '-'.join(['a', 'b']) }}",
     0, "23121 and babax!a-b"},
    {"{{ '123'.isdigit() }}{{ 'abc'.isalpha() }}{{ ' '.isspace() }}{{ 'a\nb\r\nc'.splitlines() }}{{ 'ab'.center(6, '*') }}|{{ u[1:4] }}|{{ u[::-1] }}|{{ u|length }}|{{ u.upper() }}",
     0, "TrueTrueTrue['a', 'b', 'c']**ab**|éll|dlröw olléh|11|HÉLLO WÖRLD"},
    {"{{ d.get('a') }}{{ d.get('z') }}{{ d.get('z', 9) }}{{ d.keys()|list }}{{ d.values()|list }}{{ d.items()|list }}{{ l.index(2) }}{{ l.count(3) }}",
     0, "1None9['b', 'a', 'C'][2, 1, 3][('b', 2), ('a', 1), ('C', 3)]21"},
    {"{{ l[0] }}{{ l[-1] }}{{ l[1:] }}{{ l[:-1] }}{{ l[::-1] }}{{ l[::2] }}{{ l[5] }}{{ 'abc'[1] }}{{ 'abcdef'[-2:] }}{{ l[-10:10] }}",
     0, "32[1, 2][3, 1][2, 1, 3][3, 2]bef[3, 1, 2]"},
    {"{{ d.a }}{{ d['b'] }}{{ d.zz }}|{{ messages[0].role }}|{{ messages[0]['content'] }}|{{ n.x }}|{{ d.zz is defined }}{{ d.a is defined }}",
     0, "12|user|Hi 'there'||FalseTrue"},
    {"{{ x|default('dft') }}{{ ''|default('e', true) }}{{ ''|d('e') }}{{ l|length }}{{ d|count }}{{ l|first }}{{ l|last }}{{ l|join(',') }}{{ messages|map(attribute='role')|join(' ') }}",
     0, "dfte33323,1,2user assistant"},
    {"{{ l|sort }}{{ l|sort(reverse=true) }}{{ ['b','A','c']|sort }}{{ messages|sort(attribute='role')|map(attribute='role')|list }}{{ d|dictsort }}{{ d|dictsort(by='value') }}",
     0, "[1, 2, 3][3, 2, 1]['A', 'b', 'c']['assistant', 'user'][('a', 1), ('b', 2), ('C', 3)][('a', 1), ('b', 2), ('C', 3)]"},
    {"{{ [1,2,1,3]|unique|list }}{{ ['a','A','b']|unique|list }}{{ l|select('odd')|list }}{{ l|reject('odd')|list }}{{ messages|selectattr('role','equalto','user')|list|length }}{{ messages|rejectattr('role','eq','user')|map(attribute='content')|first }}",
     0, "[1, 2, 3]['a', 'b'][3, 1][2]1Yo\n"},
    {"{{ ['a', 1, none]|select('string')|list }}{{ [0,1,2]|select|list }}{{ ['x','y']|map('upper')|list }}{{ d|items|list }}{{ 'ab'|list }}",
     0, "['a'][1, 2]['X', 'Y'][('b', 2), ('a', 1), ('C', 3)]['a', 'b']"},
    {"{{ 'a\nb\n\nc'|indent }}|{{ 'a\nb'|indent(2, true) }}|{{ 'a\n\nb'|indent(2, blank=true) }}|{{ 'x\n'|indent(3) }}|{{ 'a\nb'|indent('>>') }}",
     0, "a\n    b\n\n    c|  a\n  b|a\n  \n  b|x\n|a\n>>b"},
    {"{{ '42'|int }}{{ '4.7'|int }}{{ 'x'|int }}{{ 'x'|int(7) }}{{ 3.9|int }}{{ '1.5'|float }}{{ 3|float }}{{ 5|string }}{{ '<a>'|safe }}{{ '  t  '|trim }}{{ 'xtx'|trim('x') }}",
     0, "4240731.53.05<a>tt"},
    {"{{ 'hello world'|capitalize }}{{ 'hello world'|title }}{{ 'aaa'|replace('a','b') }}{{ 2.567|round(2) }}{{ 2.5|round }}{{ 3|round }}{{ 2.1|round(method='ceil') }}{{ -3|abs }}{{ [1,2]|reverse|list }}{{ 'abc'|reverse }}",
     0, "Hello worldHello Worldbbb2.572.033.03[2, 1]cba"},
    {"{{ [1,2,3,4,5]|batch(2)|list }}{{ 'a b  c'|wordcount }}{{ '<&>\"\\''|e }}{{ '%s-%d'|format('a', 3) }}{{ 'ab'|center(6) }}|{{ [1,2,3]|sum }}{{ [1,5,3]|max }}{{ [4,2]|min }}",
     0, "[[1, 2], [3, 4], [5]]3&lt;&amp;&gt;&#34;&#39;a-3  ab  |652"},
    {"{{ messages|tojson }}|{{ d|tojson(indent=2) }}|{{ {'a': [1, {'b': none}], 'c': 'é\"\\n'}|tojson }}|{{ [] |tojson(indent=2) }}|{{ {'b':1,'a':2}|tojson(sort_keys=true) }}|{{ 1.0|tojson }}|{{ 'x '|tojson }}",
     0, "[{\"role\": \"user\", \"content\": \"Hi 'there'\"}, {\"role\": \"assistant\", \"content\": \"Yo\\n\"}]|{\n  \"b\": 2,\n  \"a\": 1,\n  \"C\": 3\n}|{\"a\": [1, {\"b\": null}], \"c\": \"é\\\"\\n\"}|[]|{\"a\": 2, \"b\": 1}|1.0|\"x \""},
    {"{{ x is defined }}{{ x is undefined }}{{ n is none }}{{ 'a' is string }}{{ 1 is number }}{{ 1 is integer }}{{ 1.0 is float }}{{ true is boolean }}{{ true is true }}{{ false is false }}{{ d is mapping }}{{ l is iterable }}{{ 'a' is sequence }}{{ range is callable }}",
     0, "FalseTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue"},
    {"{{ 1 is eq 1 }}{{ 1 is ne 2 }}{{ 1 is lt 2 }}{{ 2 is gt 1 }}{{ 1 is le 1 }}{{ 1 is ge 2 }}{{ 2 is in l }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 'ab' is lower }}{{ 'AB' is upper }}{{ n is not none }}{{ 1 is not string }}",
     0, "TrueTrueTrueTrueTrueFalseTrueTrueTrueTrueTrueTrueFalseTrue"},
    {"{{ range(3)|list }}{{ range(1, 10, 3)|list }}{{ range(5, 0, -2)|list }}{{ dict(a=1, b=2) }}{{ namespace(a=1).a }}",
     0, "[0, 1, 2][1, 4, 7][5, 3, 1]{'a': 1, 'b': 2}1"},
    {"{{ '%s' % 'x' }}{{ '%d items' % 3 }}{{ '%.2f' % 3.14159 }}{{ '%s and %s' % ('a', 'b') }}{{ '%5s|%-5s|' % ('a', 'b') }}{{ '%05d' % 42 }}{{ '%x' % 255 }}{{ '%%' % () }}",
     0, "x3 items3.14a and b    a|b    |00042ff%"},
    {"{{ \"a\\nb\\t\\\\\\'\\\"\" }}{{ 'caf\\u00e9' }}{{ 'a' 'b' }}{{ 1_000 }}{{ 0.5e1 }}",
     0, "a\nb\t\\'\"caféab10005.0"},
    {"  {% if true %}\n  x\n  {% endif %}\n{{- ' y ' -}}\n  z  {#- c -#}  w\n{%+ if true %}keep{% endif %}\n {{ 1 }}",
     0, "  x\n y zw\nkeep 1"},
    {"{% macro a() %}{{ caller() }}!{% endmacro %}{% call a() %}body{% endcall %}",
     0, "body!"},
    {"{{ strftime_now('%d %B %Y %b %A %a %m %H:%M:%S %p %j %y') }}",
     0, "26 July 2024 Jul Friday Fri 07 00:00:00 AM 208 24"},
    {"{{ l|first is number }} {{ d|first }} {{ 'abc'|first }} {{ ''|first is defined }}",
     0, "True b a False"},
    {"{{ '{:>5}|{:<4}|{:^5}|{:.2f}|{:03d}'.format('a', 'b', 'c', 1.234, 7) }}",
     0, "    a|b   |  c  |1.23|007"},
    {"{% if messages[0]['role'] == 'user' and messages|length > 1 %}ok{% elif x %}no{% else %}else{% endif %}",
     0, "ok"},
    {"{% for m in messages %}{% for c in m.content %}{% if loop.index > 2 %}{% break %}{% endif %}{{ c }}{% endfor %}{{ loop.index }}{% endfor %}",
     0, "Hi1Yo2"},
    {"{{ messages[0].content|replace(\"'\", '\"') }}{{ messages[1].content|trim }}|{{ messages[-1]['content'][:2] }}",
     0, "Hi \"there\"Yo|Yo"},
    {"{{ {'a': 1}.items()|list }} {{ ({'a':1}|items|first)[0] }} {{ [[1,2],[3,4]]|map('first')|list }}",
     0, "[('a', 1)] a [1, 3]"},
    {"{% set t = ('a', 'b') %}{{ t }}{{ t[0] }}{{ t|length }}{{ t is sequence }}",
     0, "('a', 'b')a2True"},
    {"{{ 'abc' ~ [1] }}{{ 3 ~ 4 }}{{ 1.5 ~ '' }}{{ {'a': 'b\\'c'} }}{{ ['it\\'s'] }}{{ ['\\n'] }}",
     0, "abc[1]341.5{'a': \"b'c\"}[\"it's\"]['\\n']"},
    {"a\n{% if true %}\nb\n{% endif %}\nc\n",
     1, "a\nb\nc"},
    {"a\n  {% if true -%}\n  b\n  {%- endif %}\nc",
     1, "a\nbc"},
    {"{% for i in range(2) %}\n  {{ i }}\n{% endfor %}\n",
     1, "  0\n  1\n"},
    {"x  {{- 'y' }}  \n{{ 'z' -}}  \n  w",
     1, "xy  \nzw"},
    {"{# comment #}\na\n  {# indented #}\nb {# inline #} c",
     1, "a\nb  c"},
    {"line1\r\nline2\r\n{% if true %}\r\nx\r\n{% endif %}\r\n",
     1, "line1\nline2\nx\n"},
    {"{% set x = 5 %}{% macro m() %}{{ x }}{% endmacro %}{{ m() }}{% set x = 6 %}{{ m() }}",
     1, "56"},
    {"{% macro m() %}{% set y = 1 %}{{ y }}{% endmacro %}{{ m() }}{{ y is defined }}",
     1, "1False"},
    {"{% if true %}{% set z = 3 %}{% endif %}{{ z }}",
     1, "3"},
    {"{% for i in range(2) %}{% for j in range(2) %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}",
     1, "121122"},
    {"{{ x }}|{{ x|length }}|{{ x|default }}|{% for a in x %}no{% endfor %}|{{ x is iterable }}|{{ 'a' in x }}|{{ x == none }}|{{ x ~ 'a' }}",
     1, "|0|||True|False|False|a"},
    {"{{ none.x }}|{{ d.k.n[1] }}|{{ d['k']['zz'] }}|{{ d.k.zz|default('q') }}|{{ messages[1].tool_calls[0].function.arguments|tojson }}",
     1, "|2||q|{\"x\": 1}"},
    {"{% if tools is not none %}t{% else %}nt{% endif %}{{ tools|tojson }}{{ tools }}",
     1, "ntnullNone"},
    {"{% for m in messages %}{{ m.content if m.role == 'user' else m.tool_calls|length }}{% endfor %}",
     1, "a1"},
    {"{{ messages|selectattr('tool_calls', 'defined')|list|length }}{{ messages|selectattr('tool_calls')|list|length }}{{ messages|map(attribute='zz', default='D')|list }}",
     1, "11['D', 'D']"},
    {"{{ [1,2,3][1:] }}{{ 'abc'[5:] }}{{ 'abc'[-100:] }}{{ [1,2,3][::-2] }}{{ (1,2,3)[1:] }}",
     1, "[2, 3]abc[3, 1](2, 3)"},
    {"{{ 3 - 5 }}{{ 2.5 * 2 }}{{ 10 / 4 }}{{ 1e300 * 1e300 }}{{ -0.0 }}{{ 5 // 2.0 }}{{ 5 % 2.5 }}{{ 2 ** -1 }}{{ 100000000000000000.0 }}{{ 0.0001 }}{{ 12345678901234567890.0 }}",
     1, "-25.02.5inf-0.02.00.00.51e+170.00011.2345678901234567e+19"},
    {"{{ true + 1 }}{{ [1, 2] * 2 }}{{ 2 * 'ab' }}{{ 'a' * 0 }}{{ -1 * 'a' }}",
     1, "2[1, 2, 1, 2]abab"},
    {"{{ 1 if true }}{{ 'a' if false else 'b' if true else 'c' }}",
     1, "1b"},
    {"{{ not true == false }}{{ not 1 in [1] }}{{ (not 1) in [false] }}",
     1, "TrueFalseTrue"},
    {"{{ 'x'|upper|lower|replace('x', 'y') ~ 'z' }}{{ -3|abs + 1 }}{{ 1 + -3|abs }}",
     1, "yz44"},
    {"{{ {'a': 1, 'a': 2} }}{{ {1: 'x', 'b': none}|tojson }}{{ [true, false, none, 1.5e-7]|tojson }}",
     1, "{'a': 2}{\"1\": \"x\", \"b\": null}[true, false, null, 1.5e-07]"},
    {"{% set a = [1, 2] %}{% set b = a + [3] %}{{ a }}{{ b }}",
     1, "[1, 2][1, 2, 3]"},
    {"{{ range(3)|map('string')|join('-') }}{{ ['a','b']|join }}{{ [1,2]|join(', ') }}",
     1, "0-1-2ab1, 2"},
    {"{{ 'a-b-c'.split('-', 1) }}{{ 'abc'.split('') if false else 'ok' }}{{ ''.split() }}{{ ''.split(',') }}{{ 'a\tb\nc'.split() }}",
     1, "['a', 'b-c']ok[]['']['a', 'b', 'c']"},
    {"{{ '  x '.strip() ~ '|' }}{{ 'abcba'.strip('ab') }}{{ 'abc'.lstrip('a') }}{{ 'abc'.rstrip('c') }}{{ 'x'.strip(none) }}",
     1, "x|cbcabx"},
    {"{{ 'hello {name}, {0}'.format('p', name='n') }}{{ '{{}} {}'.format(1) }}{{ '{!r}'.format('a') }}{{ '{0[0]}'.format(['q']) }}{{ '{x[k]}'.format(x={'k': 'v'}) }}",
     1, "hello n, p{} 1'a'qv"},
    {"{{ '%(a)s-%(b)d' % {'a': 'x', 'b': 2} }}{{ '%r' % 'q' }}{{ '%s' % [1] }}{{ '%s' % none }}{{ '%.1f%%' % 99.55 }}{{ '%+d' % 5 }}{{ '%e' % 12345.678 }}{{ '%g' % 0.00001 }}",
     1, "x-2'q'[1]None99.5%+51.234568e+041e-05"},
    {"{{ 1.5|string }}{{ [1.5]|string }}{{ 'a'|string }}{{ none|string }}{{ 2|float|string }}",
     1, "1.5[1.5]aNone2.0"},
    {"{{ loop }}",
     1, ""},
    {"{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}{% for a, b in {'x': 1}|dictsort %}{{ a }}{{ b }}{% endfor %}",
     1, "37x1"},
    {"{% for x in 'ab' %}{{ loop.previtem }}{{ loop.nextitem }}|{% endfor %}",
     1, "b|a|"},
    {"{% set ns = namespace(items=[]) %}{% for i in range(3) %}{% set ns.items = ns.items + [i] %}{% endfor %}{{ ns.items }}",
     1, "[0, 1, 2]"},
    {"{% set ns = namespace() %}{% set ns.a = 1 %}{{ ns.a }}{{ ns.b }}{{ ns.b is defined }}",
     1, "1False"},
    {"{% set x = {'a': 1} %}{% set y = x %}{{ y is sameas x }}{{ x.a is sameas 1 }}",
     1, "TrueTrue"},
    {"{{ messages|length is divisibleby(2) }}{{ 3 is divisibleby 2 }}{{ 'x' is in 'xy' }}",
     1, "TrueFalseTrue"},
    {"{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}",
     1, "1(2,){'k': 3}"},
    {"{{ [3, 1, 2]|sort|first }}{{ ['b', 'a']|sort|join }}{{ [{'n': 2}, {'n': 1}]|sort(attribute='n')|map(attribute='n')|list }}{{ [[2, 'a'], [1, 'b']]|sort|list }}",
     1, "1ab[1, 2][[1, 'b'], [2, 'a']]"},
    {"{{ {'b': 1, 'a': 2}|dictsort(reverse=true) }}{{ {'B': 1, 'a': 2}|dictsort }}{{ {'B': 1, 'a': 2}|dictsort(true) }}",
     1, "[('b', 1), ('a', 2)][('a', 2), ('B', 1)][('B', 1), ('a', 2)]"},
    {"{{ 'abc'|list|reverse|join }}{{ d|list }}{{ d.k|items|list }}{{ none|default('n') }}{{ false|default('f') }}{{ false|default('f', boolean=true) }}",
     1, "cba['k'][('n', [1, 2])]NoneFalsef"},
    {"{{ '%s %s'|format('a', 'b') }}{{ 'x'|center(5) ~ '|' }}{{ 'é'|length }}{{ 'abc'|count }}",
     1, "a b  x  |13"},
    {"{% filter trim %}  a  {% endfilter %}|{% filter indent(2) %}x\ny{% endfilter %}|{% set v | upper %}abc{% endset %}{{ v }}",
     1, "a|x\n  y|ABC"},
    {"{{ 'a' 'b' 'c' }}{{ '\\x41\\u0042\\U00000043' }}{{ '\\q' }}{{ \"it's\" }}",
     1, "abcABC\\qit's"},
    {"{{ 0.1 * 3 }}{{ 1/3 }}{{ 2.0 ** 0.5 }}{{ 1e22 }}{{ 1.5e-10 }}{{ 123e3 }}",
     1, "0.300000000000000040.33333333333333331.41421356237309511e+221.5e-10123000.0"},
    {"{% for x in range(3) %}{% set y = x %}{% endfor %}{{ y }}",
     1, ""},
    {"{{ tools is none }}{{ tools is defined }}{{ undefinedvar is defined }}",
     1, "TrueTrueFalse"},
    {"{{ messages[0] }}",
     1, "{'role': 'user', 'content': 'a'}"},
    {"{{ messages[0].keys()|list }}{{ 'content' in messages[0] }}{{ messages[0].get('role') }}",
     1, "['role', 'content']Trueuser"},
    {"{{ 'a,b'.split(',')|map('trim')|list }}{{ ['1', '2']|map('int')|sum }}",
     1, "['a', 'b']3"},
    {"{{ 'abcdef'[1:5:2] }}{{ 'abc'[::-1] }}{{ 'abc'[-1] }}{{ 'abc'[10] }}",
     1, "bdcbac"},
    {"{{ [1, [2, [3]]] }}{{ {'a': {'b': {}}} }}{{ {'a': []}|tojson(indent=4) }}",
     1, "[1, [2, [3]]]{'a': {'b': {}}}{\n    \"a\": []\n}"},
    {"{% if 1 %}a{% elif 2 %}b{% elif 3 %}c{% else %}d{% endif %}{% if 0 %}a{% elif 0 %}b{% elif 3 %}c{% else %}d{% endif %}",
     1, "ac"},
};

/* Parses and renders tmpl with vars (a JSON object text); returns the status. */
static int render(const char *tmpl, const char *vars, size_t max_out, long long steps, char **out) {
    *out = NULL;
    json_error_t err;
    json_t *v = json_loads(vars ? vars : "{}", 0, &err);
    if (!v) return MESHLM_ERR_INTERNAL;
    meshlm_jinja *t = NULL;
    size_t len = 0;
    int rc = meshlm_jinja_parse(tmpl, strlen(tmpl), &t);
    if (!rc) rc = meshlm_jinja_render_limited(t, v, max_out, steps, out, &len);
    if (!rc && strlen(*out) != len) rc = MESHLM_ERR_INTERNAL;
    meshlm_jinja_free(t);
    json_decref(v);
    return rc;
}

static void check_render(const char *tmpl, const char *vars, const char *expected) {
    char *out;
    int rc = render(tmpl, vars, 0, 0, &out);
    CHECK_MSG(rc == 0 && !strcmp(out, expected), "template %s\n  rc %d (%s)\n  got      [%s]\n  expected [%s]", tmpl, rc,
              rc ? meshlm_last_error() : "", out ? out : "", expected);
    free(out);
}

/* A template that must fail with status want and a message containing each of the parts. */
static void check_error(const char *tmpl, int want, const char *part1, const char *part2) {
    char *out;
    int rc = render(tmpl, "{\"d\": {\"a\": {}}}", 0, 2000000, &out);
    const char *msg = meshlm_last_error();
    CHECK_MSG(rc == want && strstr(msg, part1) && (!part2 || strstr(msg, part2)),
              "template %.80s\n  rc %d (want %d), message [%s], want [%s] and [%s]", tmpl, rc, want, msg, part1,
              part2 ? part2 : "");
    free(out);
}

static void test_table(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_render(cases[i].tmpl, vars_json[cases[i].vars], cases[i].expected);
}

/* What plain Jinja2 lacks and Hugging Face adds, and whitespace details. */
static void test_hf_extras(void) {
    check_render("{% generation %}gen {{ 1 }}{% endgeneration %}!", NULL, "gen 1!");
    check_render("{{ strftime_now('%Y-%m-%d') }}", NULL, "2024-07-26");
    check_render("a\n", NULL, "a");
    check_render("a\n\n", NULL, "a\n");
    check_render("{% raw %}{{ x }}{% endraw %}", NULL, "{{ x }}");
    check_render("  {%- if true %}x{% endif %}", NULL, "x");
    check_render("{% if true %}  \n{% endif %}", NULL, "  \n");
    check_render("{{ [1, 2]|tojson(indent=2) }}", NULL, "[\n  1,\n  2\n]");
    check_render("{{ {'a': {'b': 1}}|tojson(indent='\\t') }}", NULL, "{\n\t\"a\": {\n\t\t\"b\": 1\n\t}\n}");
    check_render("{{ x }}{{ y }}", "{\"x\": null, \"y\": 1.0}", "None1.0");
}

static void test_errors(void) {
    check_error("{% if x %}", MESHLM_ERR_FORMAT, "line 1, col 11:", "endif");
    check_error("ab\n{{ 1 + }}", MESHLM_ERR_FORMAT, "line 2, col 8:", NULL);
    check_error("{{ x|nope }}", MESHLM_ERR_FORMAT, "line 1, col 6:", "no filter named 'nope'");
    check_error("{{ x is nope }}", MESHLM_ERR_FORMAT, "line 1, col 9:", "no test named 'nope'");
    check_error("{% unknowntag %}", MESHLM_ERR_FORMAT, "line 1, col 4:", "unknown tag");
    check_error("{% break %}", MESHLM_ERR_FORMAT, "line 1, col 4:", "outside of a loop");
    check_error("{{ 'abc }}", MESHLM_ERR_FORMAT, "line 1, col 4:", "unterminated");
    check_error("{# abc", MESHLM_ERR_FORMAT, "line 1, col 1:", "unclosed comment");
    check_error("{{ x.y }}", MESHLM_ERR_INVALID_ARG, "line 1, col 5:", "'x' is undefined");
    check_error("\n  {{ 'a' + 1 }}", MESHLM_ERR_INVALID_ARG, "line 2, col 10:", "unsupported operand");
    check_error("{{ x + 1 }}", MESHLM_ERR_INVALID_ARG, "'x' is undefined", NULL);
    check_error("{{ [1].append(2) }}", MESHLM_ERR_INVALID_ARG, "line 1, col 14:", "'append' of 'list' object is unsafe");
    check_error("{% set _ = d.update({}) %}", MESHLM_ERR_INVALID_ARG, "'update' of 'dict' object is unsafe", NULL);
    check_error("{{ [1, 2].pop() }}", MESHLM_ERR_INVALID_ARG, "unsafe", NULL);
    check_error("{{ raise_exception('no system role') }}", MESHLM_ERR_INVALID_ARG, "line 1, col 19: no system role", NULL);
    check_error("{{ 1 / 0 }}", MESHLM_ERR_INVALID_ARG, "division by zero", NULL);
    check_error("{{ none|length }}", MESHLM_ERR_INVALID_ARG, "has no len()", NULL);
    check_error("{% for a in none %}{% endfor %}", MESHLM_ERR_INVALID_ARG, "'NoneType' object is not iterable", NULL);
    check_error("{% set x.y = 1 %}", MESHLM_ERR_INVALID_ARG, "non-namespace", NULL);
    /* Names made at run time (attribute paths, attr, format fields) die before the error is told. */
    check_error("{{ ['ab']|join(attribute='x' ~ 'y.z') }}", MESHLM_ERR_INVALID_ARG, "undefined", NULL);
    check_error("{{ [[1]]|map(attribute='po' ~ 'p.x')|list }}", MESHLM_ERR_INVALID_ARG, "unsafe", NULL);
    check_error("{{ d|attr('q' ~ 'q')|attr('r') }}", MESHLM_ERR_INVALID_ARG, "undefined", NULL);
    check_error("{{ '{0.zz.yy}'.format(d) }}", MESHLM_ERR_INVALID_ARG, "undefined", NULL);
    check_error("{{ [1]|selectattr(true)|list }}", MESHLM_ERR_INVALID_ARG, "attribute must be a string", NULL);
    check_error("{{ '{0}{1}'.format(1) }}", MESHLM_ERR_INVALID_ARG, "has no argument", NULL);
    check_render("{{ ['ab']|map(attribute='up' ~ 'per')|map('string')|first|length > 0 }}", NULL, "True");
}

static void test_budgets(void) {
    check_error("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", MESHLM_ERR_RANGE, "line 1, col 21:", "macro 'f'");
    check_error("{% macro f(n) %}{{ f(n) ~ f(n) }}{% endmacro %}{{ f(1) }}", MESHLM_ERR_RANGE, "macro 'f'", NULL);
    check_error("{% for i in range(100000) %}{{ 'x' * 200 }}{% endfor %}", MESHLM_ERR_RANGE, "output exceeds", NULL);
    check_error("{{ range(1000000000)|length }}", MESHLM_ERR_RANGE, "range()", NULL);
    check_error("{{ 'x' * 10**9 }}", MESHLM_ERR_RANGE, "line 1, col 8:", "exceeds the output cap");
    check_error("{{ 'x'|indent(10**9) }}", MESHLM_ERR_RANGE, "indent", NULL);
    check_error("{{ [1]|tojson(indent=10**9) }}", MESHLM_ERR_RANGE, "tojson", NULL);
    check_error("{{ 'a'.center(10**9) }}", MESHLM_ERR_RANGE, "output cap", NULL);
    check_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", MESHLM_ERR_RANGE,
                "steps", NULL);
    check_error("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                MESHLM_ERR_RANGE, "exceeds", NULL);
    check_error("{% set ns = namespace(s=[1]) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
                MESHLM_ERR_RANGE, "list longer", NULL);
    check_error("{% set ns = namespace(s=[]) %}{% for i in range(1000) %}{% set ns.s = [ns.s] %}{% endfor %}",
                MESHLM_ERR_RANGE, "nested deeper", NULL);
    char deep[2048];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 500; i++) deep[n++] = i % 2 ? '(' : '[';
    deep[n++] = '1';
    for (int i = 499; i >= 0; i--) deep[n++] = i % 2 ? ')' : ']';
    snprintf(deep + n, sizeof deep - n, " }}");
    check_error(deep, MESHLM_ERR_FORMAT, "nested deeper than", NULL);
    char chain[20000] = "{{ 1";
    for (int i = 0; i < 3000; i++) strcat(chain, " + 1");
    strcat(chain, " }}");
    check_error(chain, MESHLM_ERR_RANGE, "nested deeper", NULL);
}

int main(void) {
    test_table();
    test_hf_extras();
    test_errors();
    test_budgets();
    return t_done();
}
