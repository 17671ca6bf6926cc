#!/usr/bin/env python3
"""Writes the XLSX roster fixtures of issuer/tests/roster.rs, with the standard library only.

    python3 issuer/tests/data/make_roster_xlsx.py

Each workbook is the minimal set of OOXML parts a spreadsheet application writes: content
types, package and workbook relationships, the workbook, a style sheet (style 1 is the
built-in date format 14), a shared-string table and one worksheet. The output is
byte-for-byte reproducible (fixed timestamps, fixed order).

- roster.xlsx: a valid roster, Chinese headers in a free order, a student number stored as a
  spreadsheet number, expiry dates as a date cell, as text and empty, an empty row.
- roster-1904.xlsx: the same first holder in a workbook of the 1904 date system.
- roster-errors.xlsx: bad cells only a spreadsheet can make: an ID number stored as a number,
  a date in the name column, a school code that lost its leading zero, an error value.
- roster-strings.xlsx: a valid roster whose shared-string table declares 2^64 - 1 strings, a
  count that would make a reader reserve memory without bound.
"""

import datetime
import pathlib
import zipfile
from xml.sax.saxutils import escape

HERE = pathlib.Path(__file__).resolve().parent

WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def id_number(first17):
    """The 18-character resident ID number: 17 digits and their ISO 7064 MOD 11-2 check."""
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS))
    return first17 + "10X98765432"[total % 11]


def serial(date, is_1904=False):
    """The spreadsheet serial number of a date."""
    epoch = datetime.date(1904, 1, 1) if is_1904 else datetime.date(1899, 12, 30)
    return (date - epoch).days


def column_letter(index):
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>
<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>
</Types>
"""

PACKAGE_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>
</Relationships>
"""

WORKBOOK_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>
<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>
<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>
</Relationships>
"""

STYLES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>
<fills count="1"><fill><patternFill patternType="none"/></fill></fills>
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>
<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>
<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>
</styleSheet>
"""


def workbook(is_1904):
    pr = '<workbookPr date1904="1"/>' if is_1904 else "<workbookPr/>"
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
{pr}
<sheets><sheet name="花名册" sheetId="1" r:id="rId1"/></sheets>
</workbook>
"""


def text(value):
    """A text cell: shared unless marked inline."""
    return ("s", value)


def inline(value):
    return ("inline", value)


def number(value):
    return ("n", value)


def date(value):
    """A date cell: a serial number with the date style."""
    return ("date", value)


def error(value):
    return ("e", value)


def write(path, rows, is_1904=False, unique_count=None):
    strings = []
    index = {}
    sheet_rows = []
    for r, cells in rows:
        xml_cells = []
        for c, cell in enumerate(cells):
            if cell is None:
                continue
            ref = f"{column_letter(c)}{r}"
            kind, value = cell
            if kind == "s":
                if value not in index:
                    index[value] = len(strings)
                    strings.append(value)
                xml_cells.append(f'<c r="{ref}" t="s"><v>{index[value]}</v></c>')
            elif kind == "inline":
                xml_cells.append(f'<c r="{ref}" t="inlineStr"><is><t>{escape(value)}</t></is></c>')
            elif kind == "n":
                xml_cells.append(f'<c r="{ref}"><v>{value}</v></c>')
            elif kind == "date":
                xml_cells.append(f'<c r="{ref}" s="1"><v>{serial(value, is_1904)}</v></c>')
            elif kind == "e":
                xml_cells.append(f'<c r="{ref}" t="e"><v>{escape(value)}</v></c>')
        sheet_rows.append(f'<row r="{r}">{"".join(xml_cells)}</row>')
    sheet = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<sheetData>{"".join(sheet_rows)}</sheetData></worksheet>\n'
    )
    shared = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        f'count="{len(strings)}" uniqueCount="{unique_count or len(strings)}">'
        + "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
        + "</sst>\n"
    )
    parts = [
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", PACKAGE_RELS),
        ("xl/workbook.xml", workbook(is_1904)),
        ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS),
        ("xl/styles.xml", STYLES),
        ("xl/sharedStrings.xml", shared),
        ("xl/worksheets/sheet1.xml", sheet),
    ]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as package:
        for name, content in parts:
            info = zipfile.ZipInfo(name, date_time=(2024, 9, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            package.writestr(info, content.encode("utf-8"))


HEADER = [text("学号"), text("姓名"), text("身份证号"), text("卡类型"), text("学校代码"), text("有效期")]


def main():
    write(
        HERE / "roster.xlsx",
        [
            (1, HEADER),
            (2, [number(20230001), text("张三"), text(id_number("11010520050101123")),
                 text("学生"), text("4111012345"), date(datetime.date(2027, 8, 31))]),
            (3, [text("T0001"), inline("李四"), text("11010519491231002X"), text("教师"),
                 text("4111012345"), text("2028-02-29")]),
            (4, [None, text(" "), None, None, None, None]),
            (5, [text("X0001"), text("Wang Wu"), text(id_number("44030419900307051")),
                 text("temporary"), number(4111012345), None]),
        ],
    )
    write(
        HERE / "roster-1904.xlsx",
        [
            (1, HEADER),
            (2, [number(20230001), text("张三"), text(id_number("11010520050101123")),
                 text("学生"), text("4111012345"), date(datetime.date(2027, 8, 31))]),
        ],
        is_1904=True,
    )
    write(
        HERE / "roster-errors.xlsx",
        [
            (1, HEADER),
            (2, [number(20230001), text("张三"), number(110105200501011230), text("学生"),
                 text("4111012345"), None]),
            (3, [text("20230002"), date(datetime.date(2024, 1, 1)), text(id_number("11010520050101123")),
                 text("学生"), number(411101234), None]),
            (4, [text("20230003"), text("李四"), text(id_number("11010520050101123")),
                 error("#N/A"), text("4111012345"), number(20270231)]),
        ],
    )
    write(
        HERE / "roster-strings.xlsx",
        [
            (1, HEADER),
            (2, [number(20230001), text("张三"), text(id_number("11010520050101123")),
                 text("学生"), text("4111012345"), None]),
        ],
        unique_count="18446744073709551615",
    )


if __name__ == "__main__":
    main()
