#!/usr/bin/env python3
"""Loads a DHAT JSON file into valgrind's dh_view.html in headless Chromium (Selenium with
chromedriver) and prints, as JSON, the root program point's numbers as the page shows them, the
page's error messages and the browser console's errors.

usage: dh_view.py DH_VIEW_HTML DHAT_JSON
"""
import json
import re
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def number(text):
    return int(text.replace(",", ""))


def main():
    viewer, data = sys.argv[1], sys.argv[2]
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--allow-file-access-from-files"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.set_page_load_timeout(60)
        driver.get("file://" + viewer)
        box = driver.find_element(By.CSS_SELECTOR, "input[type=file]")
        # The viewer hides its file input behind a "Load…" button: show it to type the path.
        driver.execute_script("arguments[0].className = ''", box)
        box.send_keys(data)
        text = ""
        deadline = time.time() + 60
        while time.time() < deadline:
            text = driver.find_element(By.TAG_NAME, "body").text
            if "PP 1/1" in text or "rror" in text:
                break
            time.sleep(0.2)
        errors = [e.text for e in driver.find_elements(By.CLASS_NAME, "error")]
        console = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        out = {"page_errors": errors, "console_errors": console, "loaded": "PP 1/1" in text}
        root = text[text.find("PP 1/1"):]
        m = re.search(r"Total:\s+([\d,]+) bytes \(100%[^)]*\) in ([\d,]+) blocks", root)
        if m:
            out["total_bytes"], out["total_blocks"] = number(m.group(1)), number(m.group(2))
        m = re.search(r"At t-gmax:\s+([\d,]+) bytes \(100%[^)]*\) in ([\d,]+) blocks", root)
        if m:
            out["gmax_bytes"], out["gmax_blocks"] = number(m.group(1)), number(m.group(2))
        m = re.search(r"At t-end:\s+([\d,]+) bytes \(100%[^)]*\) in ([\d,]+) blocks", root)
        if m:
            out["end_bytes"], out["end_blocks"] = number(m.group(1)), number(m.group(2))
        out["root_text"] = root[:1200]
        print(json.dumps(out))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
