"""The operator's web page in a real browser: headless Chromium (Debian's chromium) driven through
WebDriver (Debian's chromium-driver) by Selenium.

usage:
  browser.py watch URL OUT PROFILE
      Keeps the page open and appends every verdict row the page shows (part, frame, verdict,
      score) to OUT as JSON lines, one per part, until it is killed; the first line,
      {"loaded": true}, says the page is up.
  browser.py operate URL USER PASSWORD SHOTS SCREENSHOT PROFILE
      Waits for verdicts on the page, tries a wrong password, logs in, sets the sensitivity to
      1.25, takes SHOTS teach shots (each preview must load), saves a screenshot to SCREENSHOT,
      applies the shots and waits until the page says the new calibration is in force. One JSON line
      on standard output says what it saw.

PROFILE is the browser's user-data folder: the test that runs this kills the browser by it.
"""

import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def browser(profile):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1300", f"--user-data-dir={profile}"]:
        options.add_argument(arg)
    # Debian's driver, named here: Selenium must not look for one on the network.
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)


ROWS = "return [...document.querySelectorAll('#recent tr')].map(r => [...r.cells].map(c => c.textContent));"


def wait(what, timeout, check):
    end = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def watch(url, out, profile):
    driver = browser(profile)
    seen = set()
    with open(out, "a", encoding="utf-8") as f:
        f.write(json.dumps({"browser": True}) + "\n")
        f.flush()
        # The box may not be listening yet: try again until the page is there.
        wait("the page", 120, lambda: (driver.get(url), driver.title == "edge-ad")[1])
        f.write(json.dumps({"loaded": True}) + "\n")
        f.flush()
        while True:
            for part, frame, verdict, score, _ms in driver.execute_script(ROWS):
                if part not in seen:
                    seen.add(part)
                    f.write(json.dumps({"part": int(part), "frame": frame, "verdict": verdict, "score": score}) + "\n")
                    f.flush()
            # The page refreshes once a second; reading it more often only loads the machine.
            time.sleep(0.5)


def text(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def operate(url, user, password, shots, screenshot, profile):
    driver = browser(profile)
    report = {}
    try:
        driver.get(url)
        rows = wait("verdicts on the page", 60, lambda: [r for r in driver.execute_script(ROWS) if len(r) == 5])
        report["rows"] = rows
        report["status"] = text(driver, "status")

        def log_in(secret):
            driver.find_element(By.ID, "user").clear()
            driver.find_element(By.ID, "user").send_keys(user)
            driver.find_element(By.ID, "password").clear()
            driver.find_element(By.ID, "password").send_keys(secret)
            driver.find_element(By.ID, "login-button").click()

        log_in(password + "-wrong")
        report["wrong_password"] = wait("the refusal", 30, lambda: text(driver, "message"))
        log_in(password)
        report["who"] = wait("the login", 30, lambda: text(driver, "who"))

        field = driver.find_element(By.ID, "sensitivity-input")
        field.clear()
        field.send_keys("1.25")
        driver.find_element(By.ID, "sensitivity-apply").click()
        report["sensitivity"] = wait("the sensitivity", 30,
                                     lambda: text(driver, "sensitivity-now") == "1.25" and "1.25")

        previews = "return [...document.querySelectorAll('#teach-shots img')].map(i => i.complete && i.naturalWidth);"
        for k in range(1, shots + 1):
            wait("the shot button", 30, lambda: driver.find_element(By.ID, "teach-shot").is_enabled())
            driver.find_element(By.ID, "teach-shot").click()
            widths = wait(f"preview {k}", 30, lambda: (lambda w: len(w) == k and all(w) and w)(driver.execute_script(previews)))
        report["preview_widths"] = widths
        # The picture: the page with the shots taken and a frame in the live view.
        wait("the live view", 30, lambda: driver.execute_script(
            "const i = document.getElementById('live'); return i.complete && i.naturalWidth > 0;"))
        driver.execute_script("window.scrollTo(0, 0);")
        driver.save_screenshot(screenshot)
        driver.find_element(By.ID, "teach-apply").click()
        report["teach"] = wait("the new calibration", 300,
                               lambda: "in force" in text(driver, "teach-message") and text(driver, "teach-message"))
        report["changes"] = driver.execute_script(
            "return [...document.querySelectorAll('#changes tr')].map(r => [...r.cells].map(c => c.textContent));")
    finally:
        print(json.dumps(report), flush=True)
        driver.quit()


if __name__ == "__main__":
    if sys.argv[1] == "watch":
        watch(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "operate":
        operate(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7])
    else:
        raise SystemExit(__doc__)
